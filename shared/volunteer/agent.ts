/**
 * The volunteer agent: what a tab does once it is connected. It is backend-agnostic and
 * transport-agnostic (any socket.io client socket), so the browser's Web Worker (WebGPU) and the
 * Node simulated volunteers (wasm) run exactly the same code.
 *
 * Tasks are queued and run one at a time; queued backward tasks run before queued forward tasks
 * (with the coordinator capping microbatches in flight, this gives a 1F1B-style schedule).
 */
import type { Socket } from 'socket.io-client';
import * as tf from '../model/tf.js';
import { Stage } from '../model/stage.js';
import { weightsDigest } from '../model/digest.js';
import { decodeTensorFrame, encodeTensorFrame, encodeNamedTensors, decodeNamedTensors } from '../protocol/codec.js';
import { decodeStageState, decodeWeights, encodeStageState, encodeWeights } from '../protocol/stage-state-bundle.js';
import { replicaBundleLimits, stateBundleLimits } from '../protocol/state-bundle-limits.js';
import { WIRE_DTYPES, type WireEncoding } from '../protocol/wire-encoding.js';
import { OK, asError, asNotOk, reply } from './reply.js';
import { StagedBundle } from './staged-bundle.js';
import { DilocoReplica } from '../dp/diloco-replica.js';
import { DilocoSyncSession } from '../dp/diloco-sync-session.js';
import { streamingOf } from '../dp/streaming.js';
import { decodeDilocoState, encodeDilocoState } from '../dp/diloco-state.js';
import { flatLength, flattenWeights, unflattenWeights } from '../dp/flat-weights.js';
import { syncApplyRequestSchema, syncChunkRequestSchema } from '../dp/sync-messages.js';
import type { DpSettings } from '../dp/dp-settings.js';
import { PeerFrames, PeerFrameRefused, type PeerFramesDeps } from './peer-frames.js';
import { relayedPeerFrameSchema } from '../protocol/late-fallback.js';
import type { SentReport } from '../protocol/p2p-messages.js';
import { hopKey, markHop, taskInputKey as inputKey } from '../transport/hop-trace.js';
import type {
  Assignment,
  Capabilities,
  OkAck,
  OutMeta,
  RunStatus,
  ServerToVolunteer,
  StepAck,
  TaskMeta,
  VolunteerToServer,
  WeightParts,
  ReplicaPart,
  InferRequest,
  Chunk,
  ChunkRequest,
} from '../protocol/events.js';

export type VolunteerSocket = Socket<ServerToVolunteer, VolunteerToServer>;

/** One handler per coordinator event (the compiler checks none is missing), and one per (re)connection. */
type AgentHandlers = ServerToVolunteer & { connect: () => void };

export interface AgentStatus {
  volunteerId: string | null;
  stage: number | 'spare' | null;
  /** This tab's place in its stage's group of replicas, e.g. replica 2 of 3. */
  group: { replica: number; of: number } | null;
  /** Why this tab waits as a spare when the coordinator said (e.g. its device cannot hold any stage). */
  spareReason: string | null;
  iteration: number | null;
  stepMs: number | null;
  tokensPerSec: number | null;
  /** Seconds of compute donated so far. */
  computeSeconds: number;
  /** Tokens this tab ran through its stage's blocks (forward microbatches x batch x seq). */
  tokens: number;
  /** Forward microbatches this tab ran through its stage's blocks. */
  microbatches: number;
  lastLoss: number | null;
  run: RunStatus | null;
}

interface QueuedTask {
  meta: TaskMeta;
  input: Uint8Array | null;
  targets: Uint8Array | null;
}

export interface AgentOptions {
  capabilities: Capabilities;
  onStatus?: (s: AgentStatus) => void;
  onLog?: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** Builds the stage an assignment asks for (default: a plain Stage). */
  createStage?: (config: Assignment['config'], index: number, opts: { lr: number }) => Stage;
  /**
   * Largest share of wall-clock time spent computing, read before each task (default 1): after a
   * task of t ms the agent idles t * (1 - d) / d ms, so "use at most 50% of my GPU" is d = 0.5.
   */
  dutyCycle?: () => number;
  /**
   * `new RTCPeerConnection(config)` (browser: the page's own; Node: node-datachannel's): with it
   * the tab tells the coordinator it can take frames peer to peer (`--transport p2p|auto`).
   */
  createPeerConnection?: PeerFramesDeps['createPeerConnection'];
  /** Or links owned elsewhere (a browser worker's live on its page: shared/transport/link-bridge.ts). */
  createLinks?: PeerFramesDeps['createLinks'];
  /** Merged into the coordinator's RTCConfiguration (Node tests: bind ICE to loopback). */
  rtcExtra?: RTCConfiguration;
}

function toBytes(b: Uint8Array | ArrayBuffer): Uint8Array {
  return b instanceof Uint8Array ? b : new Uint8Array(b);
}

export class VolunteerAgent {
  private stage: Stage | null = null;
  /** How this tab sends activations and gradients (from its assignment). */
  private wire: WireEncoding = 'f32';
  private queue: QueuedTask[] = [];
  /** A bundle arriving in pieces before the assign / dp_set_state that uses it (staged-bundle.ts). */
  private readonly staged = new StagedBundle();
  private running = false;
  /** The optimizer step in progress, if any. */
  private stepping: Promise<void> | null = null;
  /** The secret of this tab's assignment: what reclaims the stage after a coordinator restart. */
  private resumeToken: string | null = null;
  /** The run this tab's stage belongs to (from the coordinator's welcome). */
  private runId: string | null = null;
  /** Replicas of a neighbour's embedding/head held for CheckFree+. */
  private replicas = new Map<ReplicaPart, Uint8Array>();
  /** Bundles being uploaded in chunks (by what was asked), until their last chunk is sent. */
  private uploads = new Map<string, Uint8Array>();
  private iterationComputeMs = 0;
  private iterationTokens = 0;
  /** `--dp diloco`: this replica's outer state (null in exact mode or without a stage). */
  private diloco: DilocoReplica | null = null;
  /** The diloco sync in progress (created by its first `dp_sync_get`), by the iteration it follows. */
  private dpSync: { iteration: number; session: Promise<DilocoSyncSession> } | null = null;
  /** Frames to and from peers (`--transport p2p|auto`). */
  private readonly peers: PeerFrames;
  readonly status: AgentStatus = {
    volunteerId: null,
    stage: null,
    group: null,
    spareReason: null,
    iteration: null,
    stepMs: null,
    tokensPerSec: null,
    computeSeconds: 0,
    tokens: 0,
    microbatches: 0,
    lastLoss: null,
    run: null,
  };

  constructor(private socket: VolunteerSocket, private opts: AgentOptions) {
    this.peers = new PeerFrames({
      createPeerConnection: opts.createPeerConnection,
      createLinks: opts.createLinks,
      rtcExtra: opts.rtcExtra,
      signal: (to, signal) => this.socket.emit('p2p-signal', { to, signal }),
      log: (level, message) => this.log(level, message),
    });
    const handlers = this.handlers();
    for (const event of Object.keys(handlers) as (keyof AgentHandlers)[]) socket.on(event, handlers[event] as never);
    if (socket.connected) this.hello();
  }

  /** What this tab does on each coordinator event, and on every (re)connection. */
  private handlers(): AgentHandlers {
    return {
      welcome: (info) => {
        this.status.volunteerId = info.volunteerId;
        this.runId = info.runId;
        this.emitStatus();
      },
      put_bundle_chunk: (info, bytes, ack) => void reply(ack, () => (this.staged.put(info, toBytes(bytes)), OK), asNotOk),
      assign: (a, ack) => {
        const take = async () => {
          this.assign(a.staged ? { ...a, weights: this.staged.take() } : a);
          await this.startDiloco(a.dp);
          return OK;
        };
        const failed = (error: string) => {
          this.log('error', `assignment failed: ${error}`);
          return asNotOk(error);
        };
        void reply(ack, take, failed);
      },
      task: (meta, input, targets) => {
        this.queue.push({ meta, input: input && toBytes(input), targets: targets && toBytes(targets) });
        markHop('recv.task', () => inputKey(meta, this.queue.at(-1)!.input));
        void this.pump();
      },
      grad_norm: (info, ack) => {
        // Async read-back (gradNormAsync): a synchronous one breaks WebGPU in a worker.
        const norm = async () => ({ iteration: info.iteration, preClipNorm: await (await this.idleStage()).gradNormAsync() });
        void reply(ack, norm, asError);
      },
      step: (info, ack) => {
        const stepping = reply(ack, () => this.step(info.iteration), asError);
        this.stepping = stepping;
        void stepping.finally(() => {
          if (this.stepping === stepping) this.stepping = null;
        });
      },
      abandon: () => {
        // Socket order guarantees every task of the abandoned attempt arrived before this. A step
        // in progress is not undone: the coordinator sent it, so every surviving stage applies it
        // (and there are no stashes during a step).
        this.queue = [];
        this.peers.cancelWaits();
        if (!this.stepping) this.stage?.abandon();
        this.iterationComputeMs = 0;
        this.iterationTokens = 0;
      },
      get_grads: (info, ack) => void reply(ack, () => this.chunkOf('grads', info, () => this.gradsBundle()), asError),
      set_grads: (_info, bundle, ack) => {
        const set = async () => {
          (await this.idleStage()).setGrads(decodeWeights(toBytes(bundle)));
          return OK;
        };
        void reply(ack, set, asNotOk);
      },
      weights_digest: (_info, ack) => {
        const digest = async () => {
          const stage = await this.idleStage();
          return { digest: weightsDigest(await stage.getWeightsAsync()), step: stage.optimizerStep() };
        };
        void reply(ack, digest, asError);
      },
      group: (g) => {
        if (this.stage && g.stage === this.stage.index) {
          this.status.group = { replica: g.replica, of: g.of };
          this.emitStatus();
        }
      },
      get_weights: (info, ack) => void reply(ack, () => this.chunkOf(`weights:${info.parts}`, info, () => this.weightsBundle(info.parts)), asError),
      put_replica: ({ part }, bundle, ack) => {
        // Validate before keeping: a replica must decode; it is restored only through the coordinator.
        const keep = () => {
          if (!this.stage) throw new Error('put_replica before this tab holds a stage');
          decodeNamedTensors(toBytes(bundle), replicaBundleLimits(this.stage.config));
          this.replicas.set(part, toBytes(bundle));
          return OK;
        };
        void reply(ack, keep, asNotOk);
      },
      infer: (info, input, ack) => void reply(ack, () => this.infer(info, toBytes(input)), asError),
      run_status: (s) => {
        this.status.run = s;
        this.emitStatus();
      },
      dp_sync_get: (info, ack) => {
        const get = async () => {
          const r = syncChunkRequestSchema.parse(info);
          return { frame: (await this.syncSession(r.iteration, true)).uplink(r.chunk) };
        };
        void reply(ack, get, asError);
      },
      dp_sync_put: (info, frame, ack) => {
        const put = async () => {
          const r = syncChunkRequestSchema.parse(info);
          (await this.syncSession(r.iteration, false)).acceptMean(r.chunk, toBytes(frame));
          return OK;
        };
        void reply(ack, put, asError);
      },
      dp_sync_apply: (info, ack) => void reply(ack, () => this.applySync(syncApplyRequestSchema.parse(info).iteration), asError),
      dp_set_state: (info, bundle, ack) => {
        const set = async () => {
          const stage = await this.idleStage();
          const replica = this.diloco;
          if (!replica || info?.stage !== stage.index) throw new Error(`diloco state for stage ${String(info?.stage)}, but this tab holds stage ${stage.index}${replica ? '' : ' outside diloco mode'}`);
          const state = decodeDilocoState(info?.staged ? this.staged.take() : toBytes(bundle), flatLength(stage.specs), stateBundleLimits(stage.specs, 2));
          this.diloco = new DilocoReplica(stage.index, state, replica.hyper, replica.chunkValues);
          this.dpSync = null;
          return OK;
        };
        void reply(ack, set, asError);
      },
      rejected: (info) => this.log('warn', `coordinator rejected a message (${info.reason}): ${info.message}`),
      p2p_config: (c) => {
        if (this.status.volunteerId) this.peers.configure(this.status.volunteerId, c);
      },
      'p2p-signal': (s) => this.peers.handleSignal(s?.from, s?.signal),
      p2p_relayed: (info, frame) => {
        const parsed = relayedPeerFrameSchema.safeParse(info);
        const bytes: unknown = frame;
        if (!parsed.success || !(bytes instanceof Uint8Array || bytes instanceof ArrayBuffer)) return this.log('warn', 'malformed p2p_relayed dropped');
        this.peers.relayed(parsed.data, toBytes(bytes));
      },
      p2p_frame: (info, ack) => void reply(ack, async () => this.peers.keptFrame(info.kind, info.attempt, info.iteration, info.mb, info.hop), asError),
      connect: () => {
        // A new session (not a recovered blip): whatever was in flight belongs to a pass that no
        // longer exists (e.g. the coordinator restarted); drop it, keep the weights.
        if (!this.socket.recovered) {
          this.queue = [];
          this.peers.cancelWaits();
          this.stage?.abandon();
        }
        this.hello();
      },
    };
  }

  /** This tab's stage once no task is running; throws when none is assigned. */
  private async idleStage(): Promise<Stage> {
    await this.idle();
    if (!this.stage) throw new Error('no stage assigned');
    return this.stage;
  }

  private hello(): void {
    const caps: Capabilities = { ...this.opts.capabilities, ...(this.status.volunteerId ? { resumeId: this.status.volunteerId } : {}), ...(this.peers.supported ? { webrtc: true } : {}) };
    if (this.stage && this.runId && this.resumeToken) caps.resume = { runId: this.runId, stage: this.stage.index, iteration: this.status.iteration ?? 0, token: this.resumeToken };
    this.socket.emit('hello', caps, (r: OkAck) => {
      if (!r.ok) this.log('error', `coordinator refused hello: ${r.error}`);
    });
  }

  private log(level: 'info' | 'warn' | 'error', message: string): void {
    this.opts.onLog?.(level, message);
  }

  private emitStatus(): void {
    this.opts.onStatus?.({ ...this.status });
  }

  /** The stage this agent trains (tests use it to inspect weights). */
  get currentStage(): Stage | null {
    return this.stage;
  }

  private assign(a: Assignment): void {
    // A new assignment brings its own secret; a reassignment of the same stage (a rollback) keeps it.
    if (a.resumeToken !== undefined || a.stage === null || a.stage !== this.stage?.index) this.resumeToken = a.resumeToken ?? null;
    this.queue = [];
    this.wire = a.wire;
    this.stage?.dispose();
    this.stage = null;
    this.diloco = null;
    this.dpSync = null;
    this.status.group = null;
    this.status.spareReason = null;
    if (a.stage === null) {
      this.status.stage = 'spare';
      if (a.reason.startsWith('spare: ')) {
        this.status.spareReason = a.reason.slice('spare: '.length);
        this.log('warn', `waiting as a spare: ${this.status.spareReason}`);
      }
    } else {
      const stage = (this.opts.createStage ?? ((c, i, o) => new Stage(c, i, o)))(a.config, a.stage, { lr: a.lr });
      if (a.weights) {
        const state = decodeStageState(toBytes(a.weights), stateBundleLimits(stage.specs, 3));
        stage.setWeights(state.weights);
        if (state.optimizer) stage.setOptimizerState(state.optimizer);
      }
      this.stage = stage;
      this.status.stage = a.stage;
      this.log('info', `assigned stage ${a.stage} (${a.reason})`);
    }
    this.emitStatus();
  }

  /**
   * `--dp diloco`: the replica's outer state starts from the weights it was assigned (a sibling's
   * synced weights on a join, which is only ever right after a sync; the seed's at the start). A
   * joiner's momentum and sync count then arrive with `dp_set_state`.
   */
  private async startDiloco(dp: DpSettings | undefined): Promise<void> {
    const stage = this.stage;
    if (!stage || dp?.mode !== 'diloco') return;
    const weights = flattenWeights(stage.specs, await stage.getWeightsAsync());
    if (this.stage === stage) this.diloco = DilocoReplica.start(stage.index, weights, { lr: dp.outerLr, momentum: dp.outerMomentum, wire: dp.wire, streaming: streamingOf(dp) });
  }

  /**
   * The sync after `iteration`: the first `dp_sync_get` snapshots the weights (after the step of
   * that iteration), later messages of the same sync share it. `create` false: it must exist.
   */
  private syncSession(iteration: number, create: boolean): Promise<DilocoSyncSession> {
    if (this.dpSync?.iteration === iteration) return this.dpSync.session;
    if (!create) return Promise.reject(new Error(`no diloco sync after iteration ${iteration} in progress`));
    const replica = this.diloco;
    if (!replica) return Promise.reject(new Error('not a diloco replica'));
    const session = (async () => {
      if (this.stepping) await this.stepping;
      const stage = await this.idleStage();
      return new DilocoSyncSession(replica, iteration, flattenWeights(stage.specs, await stage.getWeightsAsync()));
    })();
    this.dpSync = { iteration, session };
    session.catch(() => {
      if (this.dpSync?.session === session) this.dpSync = null;
    });
    return session;
  }

  /** The outer step of the sync after `iteration`: the stage loads the new synced weights (its Adam state stays). */
  private async applySync(iteration: number): Promise<{ ok: true; syncs: number }> {
    const session = await this.syncSession(iteration, false);
    const stage = await this.idleStage();
    const replica = this.diloco;
    if (!replica) throw new Error('not a diloco replica');
    // Streaming DiLoCo with an overlap: the outer update merges into the weights trained since the snapshot.
    if (replica.overlap > 0 && this.stepping) await this.stepping;
    const weights = session.apply(replica.overlap > 0 ? flattenWeights(stage.specs, await stage.getWeightsAsync()) : undefined);
    this.dpSync = null;
    stage.setWeights(unflattenWeights(stage.specs, weights));
    return { ok: true, syncs: replica.syncs };
  }

  /** The gradient accumulated over the hops this tab ran in this iteration. */
  private async gradsBundle(): Promise<Uint8Array> {
    return encodeWeights(await (await this.idleStage()).getGradsAsync());
  }

  /**
   * One chunk of an upload: asked for offset 0, the bundle is made (a snapshot) and kept until its
   * last chunk is sent; later chunks come from that snapshot.
   */
  private async chunkOf(key: string, req: ChunkRequest, make: () => Promise<Uint8Array>): Promise<Chunk> {
    if (!(Number.isInteger(req.offset) && req.offset >= 0 && Number.isInteger(req.maxBytes) && req.maxBytes > 0)) throw new Error('bad chunk request');
    let whole = this.uploads.get(key);
    if (req.offset === 0) {
      whole = await make();
      this.uploads.set(key, whole);
    }
    if (!whole || req.offset > whole.byteLength) throw new Error(`no upload of ${key} at offset ${req.offset}`);
    const bytes = whole.slice(req.offset, req.offset + req.maxBytes);
    if (req.offset + bytes.byteLength >= whole.byteLength) this.uploads.delete(key);
    return { total: whole.byteLength, offset: req.offset, bytes };
  }

  private async weightsBundle(parts: WeightParts): Promise<Uint8Array> {
    // Weights asked for after a step message are the stepped weights.
    if (this.stepping) await this.stepping;
    if (parts.startsWith('replica:')) {
      const r = this.replicas.get(parts.slice('replica:'.length) as ReplicaPart);
      if (!r) throw new Error(`no ${parts} held`);
      return r;
    }
    if (!this.stage) throw new Error('no stage assigned');
    if (parts === 'diloco') {
      if (!this.diloco) throw new Error('not a diloco replica');
      return encodeDilocoState(this.diloco.state());
    }
    if (parts === 'state') {
      return encodeStageState({ weights: await this.stage.getWeightsAsync(), optimizer: await this.stage.getOptimizerStateAsync() });
    }
    const w = await this.stage.getWeightsAsync();
    const rec: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const s of this.stage.specs) {
      if (parts === 'embed' && !s.name.startsWith('embed.')) continue;
      if (parts === 'head' && !s.name.startsWith('head.')) continue;
      rec[s.name] = { shape: s.shape, data: w[s.name]! };
    }
    return encodeNamedTensors(rec);
  }

  /**
   * Operator sampling: one forward hop outside the task queue (no stash, no gradients), so it may
   * interleave with training; after the head only the last position's logits travel back.
   */
  private async infer(req: InferRequest, input: Uint8Array): Promise<Uint8Array> {
    const stage = this.stage;
    if (!stage || stage.index !== req.stage) throw new Error(`infer for stage ${req.stage} but this tab holds ${stage?.index ?? 'none'}`);
    const x = tensorOf(input);
    const [B, T] = x.shape as [number, number];
    const pos = req.position ?? T - 1;
    let out: tf.Tensor;
    try {
      if (!Number.isInteger(pos) || pos < 0 || pos >= T) throw new Error(`position ${pos} outside the ${T} input positions`);
      const y = stage.infer(x, req.segment);
      out = req.segment.head ? tf.tidy(() => tf.reshape(tf.slice(tf.reshape(y, [B, T, -1]), [0, pos, 0], [B, 1, -1]), [B, -1])) : y;
      if (out !== y) y.dispose();
    } finally {
      x.dispose();
    }
    try {
      const data = (await out.data()) as Float32Array;
      return encodeTensorFrame({ kind: 'act', iteration: 0, microbatch: 0, hop: 0, fromStage: stage.index, toStage: -1, dtype: 'float32', shape: out.shape }, data);
    } finally {
      out.dispose();
    }
  }

  private next(): QueuedTask | undefined {
    // A task whose input is here runs before one that would wait for its peer frame (the early
    // report lets a task arrive before its frame); among either, backward first.
    const ready = (t: QueuedTask) => !t.meta.inputFrom || t.input !== null || this.peers.has(t.meta.inputFrom, t.meta.attempt, t.meta.iteration, t.meta.mb);
    const first = (ok: (t: QueuedTask) => boolean) => {
      const b = this.queue.findIndex((t) => t.meta.dir === 'B' && ok(t));
      return b >= 0 ? b : this.queue.findIndex(ok);
    };
    const r = first(ready);
    const i = r >= 0 ? r : first(() => true);
    return i >= 0 ? this.queue.splice(i, 1)[0] : undefined;
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (let t = this.next(); t; t = this.next()) {
        try {
          const ms = await this.run(t);
          const d = this.opts.dutyCycle?.() ?? 1;
          if (d > 0 && d < 1) await new Promise((r) => setTimeout(r, (ms * (1 - d)) / d));
        } catch (e) {
          this.log('error', `task ${t.meta.dir} it${t.meta.iteration} mb${t.meta.mb} hop${t.meta.hop} failed: ${(e as Error).message}`);
        }
      }
    } finally {
      this.running = false;
    }
  }

  /** Runs one task and sends its result; resolves with its compute time (ms). */
  private async run({ meta, input: given, targets }: QueuedTask): Promise<number> {
    const stage = this.stage;
    if (!stage || stage.index !== meta.stage) throw new Error(`task for stage ${meta.stage} but this tab holds ${stage?.index ?? 'none'}`);
    const out: OutMeta = { attempt: meta.attempt, iteration: meta.iteration, mb: meta.mb, dir: meta.dir, hop: meta.hop, computeMs: 0 };
    let input = given;
    // The input came peer to peer: take it from the links and check it before the stage sees it.
    if (meta.inputFrom && !input) {
      try {
        const r = await this.peers.receive(meta.inputFrom, meta.attempt, meta.iteration, meta.mb, stage.index, this.wire);
        input = r.frame;
        out.got = r.got;
      } catch (e) {
        if (!(e instanceof PeerFrameRefused)) throw e;
        if (e.reason === 'abandoned') return 0; // nothing to report: the coordinator dropped the pass
        this.log('warn', `frame from ${meta.inputFrom.peer} refused (${e.reason}): ${e.message}`);
        this.socket.emit('out', { ...out, refused: { from: meta.inputFrom.peer, reason: e.reason, ...(e.digest ? { digest: e.digest } : {}) } }, null);
        return 0;
      }
    }
    const t0 = performance.now();
    markHop('recv.start', () => inputKey(meta, input));
    const key = `${meta.attempt}:${meta.mb}:${meta.hop}`;
    let frame: Uint8Array | null = null;
    const x = input ? tensorOf(input) : null;
    const y = targets ? tensorOf(targets) : null;
    try {
      if (meta.dir === 'F' || meta.dir === 'E') {
        if (!x) throw new Error('forward task without input');
        const result = meta.dir === 'F' ? stage.forward(key, x, meta.segment, y ?? undefined) : stage.infer(x, meta.segment, y ?? undefined);
        const data = (await result.data()) as Float32Array;
        const shape = result.shape;
        result.dispose();
        if (meta.segment.head) {
          out.loss = data[0]!;
          if (meta.dir === 'F') this.status.lastLoss = data[0]!;
        } else {
          // Quantized (f16 / int8) in JS on the read-back values: the same bytes on every backend.
          frame = encodeTensorFrame(
            { kind: 'act', iteration: meta.iteration, microbatch: meta.mb, hop: meta.hop, fromStage: stage.index, toStage: meta.sendTo?.stage ?? -1, dtype: WIRE_DTYPES[this.wire], shape },
            data,
          );
        }
        // Every stage runs its blocks once per microbatch: count the microbatch's tokens there.
        if (meta.dir === 'F' && meta.segment.blocks) {
          this.iterationTokens += x.shape[0]! * x.shape[1]!;
          this.status.tokens += x.shape[0]! * x.shape[1]!;
          this.status.microbatches++;
        }
      } else {
        const dx = stage.backward(key, x ?? meta.lossScale ?? 1);
        if (dx) {
          const data = (await dx.data()) as Float32Array;
          frame = encodeTensorFrame(
            { kind: 'grad', iteration: meta.iteration, microbatch: meta.mb, hop: meta.hop, fromStage: stage.index, toStage: meta.sendTo?.stage ?? -1, dtype: WIRE_DTYPES[this.wire], shape: dx.shape },
            data,
          );
          dx.dispose();
        }
      }
    } finally {
      x?.dispose();
      y?.dispose();
    }
    out.computeMs = performance.now() - t0;
    if (frame) markHop('done', hopKey(meta.dir === 'B' ? 'grad' : 'act', meta.iteration, meta.mb, meta.hop));
    this.iterationComputeMs += out.computeMs;
    this.status.computeSeconds += out.computeMs / 1000;
    if (meta.sendTo && frame) {
      // The frame travels while the next task runs (as a relayed one does). On a link that already
      // carried a frame, `out` (`sent`) goes as the frame is handed over, and a link that breaks
      // before the peer's ack sends the frame to the coordinator (`p2p_fallback`); on a new link
      // `out` goes once the peer acknowledged (`sent`), or with the frame when it failed (`fallback`).
      const f = frame;
      let early = false;
      const handed = (sent: SentReport) => {
        early = true;
        this.socket.emit('out', { ...out, sent }, null);
      };
      void this.peers.send(meta.sendTo, meta.attempt, f, handed).then(
        (r) => {
          if (!early) return void this.socket.emit('out', 'sent' in r ? { ...out, sent: r.sent } : { ...out, fallback: r.fallback }, 'sent' in r ? null : f);
          if ('sent' in r) return;
          this.log('warn', `task ${meta.dir} it${meta.iteration} mb${meta.mb} hop${meta.hop}: the link to ${meta.sendTo!.peer} broke (${r.fallback}); the frame goes through the coordinator`);
          this.socket.emit('p2p_fallback', { attempt: meta.attempt, iteration: meta.iteration, mb: meta.mb, dir: meta.dir, hop: meta.hop, reason: r.fallback }, f);
        },
        (e) => this.log('error', `task ${meta.dir} it${meta.iteration} mb${meta.mb} hop${meta.hop}: sending to ${meta.sendTo!.peer} failed: ${(e as Error).message}`),
      );
      return out.computeMs;
    }
    this.socket.emit('out', out, frame);
    return out.computeMs;
  }

  private async step(iteration: number): Promise<StepAck> {
    const stage = this.stage;
    if (!stage) throw new Error('no stage assigned');
    await this.idle();
    const t0 = performance.now();
    // Async read-back: a synchronous one (dataSync) breaks WebGPU in a worker (OffscreenCanvas path).
    const norms = await stage.clipAndStepAsync();
    const stepMs = this.iterationComputeMs + (performance.now() - t0);
    this.status.iteration = iteration + 1;
    this.peers.clear();
    this.status.stepMs = stepMs;
    this.status.tokensPerSec = stepMs > 0 ? (this.iterationTokens * 1000) / stepMs : null;
    this.status.computeSeconds += (performance.now() - t0) / 1000;
    const links = this.peers.pairStats();
    this.socket.emit('stats', { computeMs: stepMs, tokensPerSec: this.status.tokensPerSec ?? 0, ...(links.length ? { links } : {}) });
    this.iterationComputeMs = 0;
    this.iterationTokens = 0;
    this.emitStatus();
    return { iteration, preClipNorm: norms.preClipNorm, postClipNorm: norms.postClipNorm, blockNorm: norms.blockNorm, stepMs };
  }

  /** Resolves when no task is running. */
  private async idle(): Promise<void> {
    while (this.running) await new Promise((r) => setTimeout(r, 1));
  }

  /**
   * Leave gracefully: tell the coordinator and stay until it acknowledges (it may first take this
   * stage's exact state, the handoff, when this tab is the stage's last replica), or `timeoutMs`.
   */
  async leave(timeoutMs = 10_000): Promise<void> {
    if (this.socket.connected) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, timeoutMs);
        this.socket.emit('leave', () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    this.socket.disconnect();
    this.dispose();
  }

  dispose(): void {
    this.peers.close();
    this.stage?.dispose();
    this.stage = null;
    this.queue = [];
  }
}

/** A tensor on this tab's backend from a frame: int32 stays int32; float16 / int8 are decoded to float32 first. */
function tensorOf(bytes: Uint8Array): tf.Tensor {
  const { header, data } = decodeTensorFrame(bytes);
  return tf.tensor(data, header.shape, header.dtype === 'int32' ? 'int32' : 'float32');
}
