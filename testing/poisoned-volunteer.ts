/**
 * A misbehaving volunteer for the quarantine tests: an honest Node volunteer wrapped from outside
 * (the product's agent has no poison switch). Modes:
 * - 'nan': every activation it sends is non-finite;
 * - 'huge-grads': its own parameter gradients are inflated 1e4x (its gradient norm explodes) while
 *   what it sends upstream stays honest: a broken or malicious stage.
 * The mode can change while it runs (setPoison).
 */
import * as tf from '../shared/model/tf.js';
import { Stage } from '../shared/model/stage.js';
import type { VolunteerSocket } from '../shared/volunteer/agent.js';
import { startNodeVolunteer, type NodeVolunteer, type NodeVolunteerOptions } from './node-volunteer.js';

export type PoisonMode = 'nan' | 'huge-grads' | null;

const INFLATE = 1e4;

export interface PoisonedVolunteer extends NodeVolunteer {
  setPoison(mode: PoisonMode): void;
}

/** Overwrites a frame's float32 payload with NaN (the encoder refuses to write one). */
function poisonFrame(frame: Uint8Array): Uint8Array {
  const out = frame.slice();
  const rank = out[7]!;
  const start = 20 + 4 * rank;
  new Float32Array(out.buffer, out.byteOffset + start, (out.byteLength - start) / 4).fill(Number.NaN);
  return out;
}

export async function startPoisonedVolunteer(url: string, mode: PoisonMode, opts: NodeVolunteerOptions = {}): Promise<PoisonedVolunteer> {
  let current = mode;
  class InflatingStage extends Stage {
    override backward(key: string, gradOutput: tf.Tensor | number): tf.Tensor | null {
      if (current !== 'huge-grads') return super.backward(key, gradOutput);
      const dy = typeof gradOutput === 'number' ? gradOutput * INFLATE : tf.mul(gradOutput, INFLATE);
      const raw = super.backward(key, dy);
      if (typeof dy !== 'number') dy.dispose();
      if (!raw) return null;
      const dx = tf.div(raw, INFLATE);
      raw.dispose();
      return dx;
    }
  }
  const wrapSocket = (socket: VolunteerSocket) => {
    const emit = socket.emit.bind(socket) as (event: string, ...args: unknown[]) => VolunteerSocket;
    (socket as unknown as { emit: typeof emit }).emit = (event, ...args) => {
      if (current === 'nan' && event === 'out' && args[1] instanceof Uint8Array) args[1] = poisonFrame(args[1]);
      return emit(event, ...args);
    };
  };
  const v = await startNodeVolunteer(url, { ...opts, wrapSocket, createStage: (c, i, o) => new InflatingStage(c, i, o) });
  return { ...v, setPoison: (m) => (current = m) };
}
