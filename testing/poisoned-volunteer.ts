/**
 * A misbehaving volunteer for the quarantine tests: an honest Node volunteer wrapped from outside
 * (the product's agent has no poison switch). Modes:
 * - 'nan': every activation it sends is non-finite (in any wire encoding);
 * - 'huge-grads': its own parameter gradients are inflated 1e4x (its gradient norm explodes) while
 *   what it sends upstream stays honest: a broken or malicious stage.
 * - 'inflate-sent-grads': computes honestly (its own gradients and step are right) but the
 *   activation gradients it sends upstream are 1e4x: its upstream neighbour's gradient explodes.
 * - 'inflate-sent-acts': computes honestly but the activations it sends downstream are 1e4x.
 * - 'amplify-acts': every forward it runs (a training task, a validation or audit re-run) leaves
 *   1e4x: what a stage whose weights had been scaled computes. Set on every replica of a stage,
 *   it is a jump its siblings reproduce (an audit finds it consistent, hop-audit.ts).
 * - 'mute-grad-norm', 'mute-step': computes its tasks but never answers the barrier's question
 *   (`grad_norm` or `step`): it would hold every barrier until dropped.
 * The mode can change while it runs (setPoison).
 */
import * as tf from '../shared/model/tf.js';
import { Stage, type Segment } from '../shared/model/stage.js';
import type { VolunteerSocket } from '../shared/volunteer/agent.js';
import { decodeTensorFrame } from '../shared/protocol/codec.js';
import { startNodeVolunteer, type NodeVolunteer, type NodeVolunteerOptions } from './node-volunteer.js';

export type PoisonMode = 'nan' | 'huge-grads' | 'inflate-sent-grads' | 'inflate-sent-acts' | 'amplify-acts' | 'mute-grad-norm' | 'mute-step' | null;

/** The barrier question each mute mode leaves unanswered. */
const MUTED: Partial<Record<NonNullable<PoisonMode>, string>> = { 'mute-grad-norm': 'grad_norm', 'mute-step': 'step' };

const INFLATE = 1e4;

export interface PoisonedVolunteer extends NodeVolunteer {
  setPoison(mode: PoisonMode): void;
}

/**
 * Makes a frame's values non-finite, whatever its wire encoding (the encoder refuses to write
 * one): float32 values or int8 block scales become NaN, float16 values the NaN half 0x7e00.
 */
export function poisonFrame(frame: Uint8Array): Uint8Array {
  const out = frame.slice();
  const { header } = decodeTensorFrame(frame);
  const start = 20 + 4 * out[7]!;
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  if (header.dtype === 'float16') for (let o = start; o < out.byteLength; o += 2) view.setUint16(o, 0x7e00, true);
  else if (header.dtype === 'int8') {
    const blocks = view.getUint32(start + 4, true);
    for (let b = 0; b < blocks; b++) view.setFloat32(start + 8 + 4 * b, Number.NaN, true);
  } else for (let o = start; o < out.byteLength; o += 4) view.setFloat32(o, Number.NaN, true);
  return out;
}

export async function startPoisonedVolunteer(url: string, mode: PoisonMode, opts: NodeVolunteerOptions = {}): Promise<PoisonedVolunteer> {
  let current = mode;
  /** `t` times INFLATE (t is disposed). */
  const inflated = (t: tf.Tensor): tf.Tensor => {
    const out = tf.mul(t, INFLATE);
    t.dispose();
    return out;
  };
  class InflatingStage extends Stage {
    override forward(key: string, input: tf.Tensor, seg: Segment = this.fullSegment(), targets?: tf.Tensor): tf.Tensor {
      const y = super.forward(key, input, seg, targets);
      // The stash is the honest one; only what leaves for the next stage is inflated (not a loss).
      return (current === 'inflate-sent-acts' || current === 'amplify-acts') && !seg.head ? inflated(y) : y;
    }

    override infer(input: tf.Tensor, seg: Segment = this.fullSegment(), targets?: tf.Tensor): tf.Tensor {
      const y = super.infer(input, seg, targets);
      return current === 'amplify-acts' && !seg.head ? inflated(y) : y;
    }

    override backward(key: string, gradOutput: tf.Tensor | number): tf.Tensor | null {
      if (current === 'inflate-sent-grads') {
        const dx = super.backward(key, gradOutput);
        return dx ? inflated(dx) : null;
      }
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
    // Handlers see the question but, muted, never call its acknowledgement.
    const on = socket.on.bind(socket) as (event: string, h: (...args: unknown[]) => void) => VolunteerSocket;
    (socket as unknown as { on: typeof on }).on = (event, h) => on(event, (...args) => (current !== null && MUTED[current] === event ? undefined : h(...args)));
  };
  const v = await startNodeVolunteer(url, { ...opts, wrapSocket, createStage: (c, i, o) => new InflatingStage(c, i, o) });
  return { ...v, setPoison: (m) => (current = m) };
}
