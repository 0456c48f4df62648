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
import { fragmentDueAfter, fragmentRanges, streamingOf, type StreamingPlan } from '../shared/dp/streaming.js';
import { syncChunkRequestSchema, syncApplyRequestSchema } from '../shared/dp/sync-messages.js';
import { EDGE_HOP_FRACTION } from '../shared/schedule/skip-timing.js';
import type { ResolvedConfig } from '../shared/model/config.js';
import type { Assignment, WeightParts } from '../shared/protocol/events.js';
import { pacedBundle, type PacedBundle } from './paced-bundles.js';

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

/** The chunk of `whole` a bundle-transfer request asks for. */
function chunkOf(whole: Uint8Array, req: { offset: number; maxBytes: number }): unknown {
  if (!(Number.isInteger(req?.offset) && req.offset >= 0 && Number.isInteger(req?.maxBytes) && req.maxBytes > 0)) return { error: 'bad chunk request' };
  return { total: whole.byteLength, offset: req.offset, bytes: whole.subarray(req.offset, Math.min(whole.byteLength, req.offset + req.maxBytes)) };
}

/** A 16-hex-digit fingerprint standing for "stage s after the outer step of iteration t". */
function digestOf(stage: number, lastSync: number): string {
  return ((stage + 1) * 0x10000 + (lastSync + 1)).toString(16).padStart(16, '0');
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
  /** The run's model and lr (from the assignment): the sizes of the bundles it uploads. */
  private config: ResolvedConfig | null = null;
  private lr = 1e-3;
  /** The iteration of the last outer step applied (what its fingerprint stands for). */
  private lastSync = -1;
  /** The run's diloco fragment plan (from the assignment; null before one). */
  private plan: StreamingPlan | null = null;
  /** CheckFree replicas kept for the coordinator (put_replica), by part. */
  private replicas = new Map<string, Uint8Array>();

  constructor(url: string, private act: Uint8Array, private grad: Uint8Array, private pacing: Pacing, private diloco?: PacedDiloco) {
    this.socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false });
    const s = this.socket;
    s.on('connect', () => s.emit('hello', { backend: 'webgpu', adapter: null, throughputGflops: 1, agent: 'bench/paced' }, () => {}));
    s.on('assign', (a: Partial<Assignment>, ack: (r: unknown) => void) => {
      this.stage = a.stage ?? -1;
      this.config = a.config ?? this.config;
      this.lr = a.lr ?? this.lr;
      this.plan = a.dp ? streamingOf(a.dp) : null;
      this.queue = [];
      ack({ ok: true });
    });
    s.on('task', (meta: TaskMeta, input: Uint8Array | null) => {
      this.queue.push({ meta, input });
      void this.pump();
    });
    s.on('abandon', () => void (this.queue = []));
    s.on('grad_norm', (info: { iteration: number }, ack: (r: unknown) => void) => ack({ iteration: info.iteration, preClipNorm: 1 }));
    s.on('step', (info: { iteration: number }, ack: (r: unknown) => void) => ack({ iteration: info.iteration, preClipNorm: 1, postClipNorm: 1, stepMs: 0 }));
    // Uploads in chunks (coordinator/tabs/bundle-transfer.ts), of the true sizes (paced-bundles.ts).
    s.on('get_weights', (info: { parts: WeightParts; offset: number; maxBytes: number }, ack: (r: unknown) => void) => {
      const kind = info?.parts;
      if (typeof kind === 'string' && kind.startsWith('replica:')) {
        const r = this.replicas.get(kind.slice('replica:'.length));
        return r ? ack(chunkOf(r, info)) : ack({ error: `no ${kind} held` });
      }
      if (!['all', 'embed', 'head', 'state', 'diloco'].includes(kind)) return ack({ error: `bad parts ${String(kind)}` });
      this.upload(kind as PacedBundle, info, ack);
    });
    s.on('get_grads', (info: { offset: number; maxBytes: number }, ack: (r: unknown) => void) => this.upload('grads', info, ack));
    s.on('set_grads', (_info: unknown, _bundle: Uint8Array, ack: (r: unknown) => void) => setTimeout(() => ack({ ok: true }), this.pacing.codecMs));
    // A large state arrives in pieces before the assign / dp_set_state that uses it (coordinator/tabs/bundle-push.ts); nothing to keep.
    s.on('put_bundle_chunk', (_info: unknown, _bytes: Uint8Array, ack: (r: unknown) => void) => ack({ ok: true }));
    s.on('put_replica', (info: { part: string }, bundle: Uint8Array, ack: (r: unknown) => void) => {
      this.replicas.set(String(info?.part), bundle);
      ack({ ok: true });
    });
    // Replicas right after a sync must agree (replica-sync.ts): a paced volunteer holds no weights,
    // so every paced replica of a stage that applied the same outer step reports the same
    // fingerprint, and Adam step 0 (its stage bundles say 0 too), and no re-sync is triggered.
    s.on('weights_digest', (_info: unknown, ack: (r: unknown) => void) => ack({ digest: digestOf(this.stage, this.lastSync), step: 0 }));
    // diloco syncs (shared/dp/sync-messages.ts): frames of the true sizes and encoding, paced like a codec.
    s.on('dp_sync_get', (info: unknown, ack: (r: unknown) => void) => {
      const r = syncChunkRequestSchema.safeParse(info);
      if (!r.success || !this.diloco || this.stage < 0) return ack({ error: 'bad dp_sync_get' });
      const frame = this.syncChunk(r.data.chunk, r.data.iteration);
      if (!frame) return ack({ error: `chunk ${r.data.chunk} out of range` });
      setTimeout(() => ack({ frame: patched(frame, r.data.iteration, r.data.chunk, 0, this.stage) }), this.pacing.codecMs);
    });
    s.on('dp_sync_put', (info: unknown, _frame: Uint8Array, ack: (r: unknown) => void) => {
      if (!syncChunkRequestSchema.safeParse(info).success) return ack({ error: 'bad dp_sync_put' });
      setTimeout(() => ack({ ok: true }), this.pacing.codecMs);
    });
    s.on('dp_sync_apply', (info: unknown, ack: (r: unknown) => void) => {
      if (!syncApplyRequestSchema.safeParse(info).success) return ack({ error: 'bad dp_sync_apply' });
      this.lastSync = (info as { iteration: number }).iteration;
      ack({ ok: true, syncs: ++this.syncs });
    });
    s.on('dp_set_state', (info: { stage: number }, bundle: Uint8Array, ack: (r: unknown) => void) => {
      if (!this.diloco || info?.stage !== this.stage || !(bundle instanceof Uint8Array)) return ack({ error: 'bad dp_set_state' });
      setTimeout(() => ack({ ok: true }), this.pacing.codecMs);
    });
  }

  /** Answers one chunk of upload `kind` (the bundle of its true size, encoded once). */
  private upload(kind: PacedBundle, req: { offset: number; maxBytes: number }, ack: (r: unknown) => void): void {
    if (!this.config || this.stage < 0) return ack({ error: 'no stage assigned' });
    if (kind === 'diloco' && !this.diloco) return ack({ error: 'not a diloco replica' });
    const whole = pacedBundle(this.config, this.stage, kind, this.lr);
    // The first chunk costs the tab its encode (a read-back and a copy).
    setTimeout(() => ack(chunkOf(whole, req)), req.offset === 0 ? this.pacing.codecMs : 0);
  }

  /** The stage it serves (-1: none). */
  get stageIndex(): number {
    return this.stage;
  }

  /** Uplink chunk `index` of this stage's pseudo-gradient, synthetic values, encoded once per size. */
  private syncChunk(index: number, iteration: number): Uint8Array | null {
    // Streaming DiLoCo: the chunks of the fragment that syncs after `iteration` (shared/dp/streaming.ts).
    const total = this.diloco!.params(this.stage);
    const fragment = this.plan ? fragmentRanges(total, this.plan.fragments)[fragmentDueAfter(this.plan, iteration) ?? 0]! : { count: total };
    const c = syncChunks(fragment.count)[index];
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
