/**
 * A protocol-level volunteer for link benchmarks: it speaks the coordinator's socket.io protocol
 * like a tab (hello, assign, task -> out, grad_norm, step) but does not run the model. Each task
 * takes a fixed, paced time (the compute a real tab would spend), then answers with a real
 * frame of the right shape and the run's wire encoding: a template encoded once by the real
 * codec, with its header patched per task. Queued backward tasks run first, as in the agent.
 * So the coordinator, its relay checks and the (emulated) links see exactly a real run's
 * traffic, while the 2-core machine's CPU is not what is measured.
 */
import { io, type Socket } from 'socket.io-client';
import type { TaskMeta } from '../shared/protocol/events.js';
import { encodeTensorFrame, WIRE_DTYPES, type FrameKind, type WireEncoding } from '../shared/protocol/index.js';
import { mulberry32 } from '../shared/model/rng.js';
import { syncChunks, encodeSyncChunk } from '../shared/dp/sync-chunks.js';
import { encodeDilocoState } from '../shared/dp/diloco-state.js';
import { syncChunkRequestSchema, syncApplyRequestSchema } from '../shared/dp/sync-messages.js';
import { EDGE_HOP_FRACTION } from '../shared/schedule/skip-timing.js';

/** `--dp diloco` for a paced volunteer: its stage's parameter count and the sync encoding. */
export interface PacedDiloco {
  /** Parameters of stage s (flat-weights.ts flatLength of its specs). */
  params: (stage: number) => number;
  wire: WireEncoding;
}

export interface Pacing {
  /** ms per forward task (backward tasks take 2x). */
  forwardMs: number;
  /** ms added to every task that sends or receives a frame (the tab's encode / decode). */
  codecMs: number;
}

/** Synthetic activations of `count` values: roughly normal, a few outliers (seeded). */
export function syntheticActivations(count: number, seed = 1): Float32Array {
  const rand = mulberry32(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (rand() + rand() + rand() - 1.5) * 2 * (i % 1009 === 0 ? 20 : 1);
  return out;
}

/** One frame of `shape` encoded with `wire`; `patched` copies it with a task's header fields. */
export function frameTemplate(kind: FrameKind, shape: number[], wire: WireEncoding): Uint8Array {
  const data = syntheticActivations(shape.reduce((a, b) => a * b, 1), kind === 'act' ? 1 : 2);
  return encodeTensorFrame({ kind, iteration: 0, microbatch: 0, hop: 0, fromStage: 0, toStage: -1, dtype: WIRE_DTYPES[wire], shape }, data);
}

/** A copy of frame `t` with a task's header fields (the payload stays valid: it does not depend on them). */
export function patched(t: Uint8Array, iteration: number, mb: number, hop: number, fromStage: number): Uint8Array {
  const f = t.slice();
  const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
  v.setUint32(8, iteration, true);
  v.setUint16(12, mb, true);
  v.setUint16(14, hop, true);
  v.setInt16(16, fromStage, true);
  return f;
}

export class PacedVolunteer {
  readonly socket: Socket;
  private stage = -1;
  private queue: { meta: TaskMeta; input: Uint8Array | null }[] = [];
  private busy = false;
  /** Paced compute time spent so far, ms (what a stage's tab was busy with). */
  busyMs = 0;

  private syncTemplates = new Map<string, Uint8Array>();
  private syncs = 0;

  constructor(url: string, private act: Uint8Array, private grad: Uint8Array, private pacing: Pacing, private diloco?: PacedDiloco) {
    this.socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false });
    const s = this.socket;
    s.on('connect', () => s.emit('hello', { backend: 'webgpu', adapter: null, throughputGflops: 1, agent: 'bench/paced' }, () => {}));
    s.on('assign', (a: { stage: number | null }, ack: (r: unknown) => void) => {
      this.stage = a.stage ?? -1;
      ack({ ok: true });
    });
    s.on('task', (meta: TaskMeta, input: Uint8Array | null) => {
      this.queue.push({ meta, input });
      void this.pump();
    });
    s.on('abandon', () => void (this.queue = []));
    s.on('grad_norm', (info: { iteration: number }, ack: (r: unknown) => void) => ack({ iteration: info.iteration, preClipNorm: 1 }));
    s.on('step', (info: { iteration: number }, ack: (r: unknown) => void) => ack({ iteration: info.iteration, preClipNorm: 1, postClipNorm: 1, stepMs: 0 }));
    // diloco syncs (shared/dp/sync-messages.ts): frames of the true sizes and encoding, paced like a codec.
    s.on('dp_sync_get', (info: unknown, ack: (r: unknown) => void) => {
      const r = syncChunkRequestSchema.safeParse(info);
      if (!r.success || !this.diloco || this.stage < 0) return ack({ error: 'bad dp_sync_get' });
      const frame = this.syncChunk(r.data.chunk);
      if (!frame) return ack({ error: `chunk ${r.data.chunk} out of range` });
      setTimeout(() => ack({ frame: patched(frame, r.data.iteration, r.data.chunk, 0, this.stage) }), this.pacing.codecMs);
    });
    s.on('dp_sync_put', (info: unknown, _frame: Uint8Array, ack: (r: unknown) => void) => {
      if (!syncChunkRequestSchema.safeParse(info).success) return ack({ error: 'bad dp_sync_put' });
      setTimeout(() => ack({ ok: true }), this.pacing.codecMs);
    });
    s.on('dp_sync_apply', (info: unknown, ack: (r: unknown) => void) => {
      if (!syncApplyRequestSchema.safeParse(info).success) return ack({ error: 'bad dp_sync_apply' });
      ack({ ok: true, syncs: ++this.syncs });
    });
    s.on('dp_state', (_info: unknown, ack: (r: unknown) => void) => {
      if (!this.diloco || this.stage < 0) return ack({ error: 'no diloco stage' });
      const n = this.diloco.params(this.stage);
      ack({ bundle: encodeDilocoState({ synced: new Float32Array(n), momentum: new Float32Array(n), syncs: this.syncs }) });
    });
  }

  /** Uplink chunk `index` of this stage's pseudo-gradient, synthetic values, encoded once per size. */
  private syncChunk(index: number): Uint8Array | null {
    const c = syncChunks(this.diloco!.params(this.stage))[index];
    if (!c) return null;
    const key = `${this.stage}:${c.count}`;
    let t = this.syncTemplates.get(key);
    if (!t) {
      t = encodeSyncChunk({ stage: this.stage, iteration: 0, direction: 'up', wire: this.diloco!.wire }, { ...c, index: 0 }, syntheticActivations(c.count, 3).map((x) => x * 1e-3));
      this.syncTemplates.set(key, t);
    }
    return t;
  }

  private async pump(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    while (this.queue.length) {
      const b = this.queue.findIndex((t) => t.meta.dir === 'B');
      const { meta, input } = this.queue.splice(b >= 0 ? b : 0, 1)[0]!;
      const sends = meta.dir === 'B' ? !meta.segment.embed : !meta.segment.head;
      const framed = (input && input.byteLength > 0 && !(meta.dir !== 'B' && meta.segment.embed) ? 1 : 0) + (sends ? 1 : 0);
      // A hop that runs no blocks (embedding-only or head-only, skip paths and CheckFree+ swaps)
      // costs a fraction of a task, as on a tab and in the time model (skip-timing.ts).
      const work = meta.segment.blocks ? 1 : EDGE_HOP_FRACTION;
      const ms = (meta.dir === 'B' ? 2 : 1) * this.pacing.forwardMs * work + framed * this.pacing.codecMs;
      this.busyMs += ms;
      await new Promise((r) => setTimeout(r, ms));
      const out: Record<string, unknown> = { attempt: meta.attempt, iteration: meta.iteration, mb: meta.mb, dir: meta.dir, hop: meta.hop, computeMs: ms };
      let frame: Uint8Array | null = null;
      if (meta.dir !== 'B' && meta.segment.head) out.loss = 5;
      else if (sends) frame = patched(meta.dir === 'B' ? this.grad : this.act, meta.iteration, meta.mb, meta.hop, this.stage);
      this.socket.emit('out', out, frame);
    }
    this.busy = false;
  }

  close(): void {
    this.socket.close();
  }
}
