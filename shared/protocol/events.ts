/**
 * Every socket.io event between the coordinator and a volunteer, typed in one place, with the
 * zod schemas the coordinator validates each incoming JSON payload against. Tensors travel as
 * binary frames (codec.ts) next to the JSON metadata, never as JSON number lists.
 *
 * Task flow for one iteration (coordinator = scheduler and relay; tabs are workers):
 *   coordinator -> tab   task {dir:'F', hop}  + input frame (tokens or activation) [+ targets]
 *   tab -> coordinator   out  {dir:'F', hop}  + activation frame   (or {loss} after the head)
 *   coordinator -> tab   task {dir:'B', hop}  + gradient frame (or lossScale at the head)
 *   tab -> coordinator   out  {dir:'B', hop}  + gradient frame     (none after the embedding)
 *   coordinator -> tabs  step {iteration}   -> ack {preClipNorm, postClipNorm, blockNorm}
 * `hop` is always the index in the microbatch's *forward* path (shared/schedule), in both
 * directions, so it doubles as the stash key on the tab.
 */
import { z } from 'zod';
import type { ResolvedConfig } from '../model/config.js';
import type { WireEncoding } from './wire-encoding.js';
import type { DpSettings } from '../dp/dp-settings.js';
import type { SyncApplyRequest, SyncChunkRequest } from '../dp/sync-messages.js';
import { fallbackSchema, gotReportSchema, refusedReportSchema, sentReportSchema, type InputFrom, type P2pConfig, type SendTo } from './p2p-messages.js';
import type { IncomingSignal, OutgoingSignal } from './signal.js';
import type { LateFallback, RelayedPeerFrame } from './late-fallback.js';
import { pairStatsSchema } from './pair-stats.js';

// The `dp_*` messages' schemas live with the diloco sync they serve; every event is declared here.
export { syncChunkRequestSchema, syncApplyRequestSchema, syncGetReplySchema, syncOkReplySchema, syncApplyReplySchema } from '../dp/sync-messages.js';
export type { SyncApplyRequest, SyncChunkRequest };

export const BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

const str = (max: number) => z.string().max(max);
const count = z.number().int().min(0).max(0xffff);

const finite = z.number().finite();

export const segmentSchema = z.strictObject({ embed: z.boolean(), blocks: z.boolean(), head: z.boolean() });

/** A browser's random local id (localStorage), for its contribution totals across visits. */
export const browserIdSchema = z.string().regex(/^[A-Za-z0-9_-]{16,64}$/, 'browser id: 16-64 characters A-Z a-z 0-9 _ -');
/** An opt-in public nickname: 1-24 letters, digits, spaces, `_`, `-`, `.`; no leading/trailing space. */
export const NICKNAME_MAX = 24;
export const nicknameSchema = z
  .string()
  .max(NICKNAME_MAX, `nickname: at most ${NICKNAME_MAX} characters`)
  .regex(/^[\p{L}\p{N}_.-](?:[\p{L}\p{N} _.-]*[\p{L}\p{N}_.-])?$/u, 'nickname: letters, digits, spaces, _ - . only');

export const capabilitiesSchema = z.strictObject({
  backend: z.enum(BACKENDS),
  adapter: z
    .strictObject({ vendor: str(200), architecture: str(200), description: str(400), isFallbackAdapter: z.boolean().optional() })
    .nullable(),
  throughputGflops: finite.min(0).max(1e6),
  agent: str(200),
  /** Id of a previous session of this volunteer (reconnect after a blip). */
  resumeId: str(64).optional(),
  /**
   * What this tab still holds after losing its coordinator (e.g. the coordinator restarted): the
   * run, its stage and how many optimizer steps it has applied. A resumed run reclaims it.
   */
  resume: z
    .strictObject({
      runId: str(64),
      stage: z.number().int().min(0).max(1023),
      iteration: z.number().int().min(0).max(0xffffffff),
      /** The secret the coordinator handed this tab with its assignment (its hash is stored). */
      token: z.string().min(16).max(128),
    })
    .optional(),
  /** The browser's random local id: contribution totals across visits (never shown to others). */
  browserId: browserIdSchema.optional(),
  /** Opt-in name for the public top-contributors table. */
  nickname: nicknameSchema.optional(),
  /**
   * What the tab's backend can hold (WebGPU's buffer limits; memory where the browser tells it):
   * a tab is never given a stage that does not fit (shared/model/memory.ts fitsDevice).
   */
  limits: z
    .strictObject({
      maxBufferSize: z.number().int().min(1).max(2 ** 50).optional(),
      maxStorageBufferBindingSize: z.number().int().min(1).max(2 ** 50).optional(),
      memoryBytes: z.number().int().min(1).max(2 ** 50).optional(),
    })
    .optional(),
  /** The tab can open WebRTC data channels (`--transport p2p|auto` sends it frames peer to peer). */
  webrtc: z.boolean().optional(),
});
export type Capabilities = z.infer<typeof capabilitiesSchema>;

export const DIRECTIONS = ['F', 'B', 'E'] as const;
export type TaskDir = (typeof DIRECTIONS)[number];

/** Metadata of a task result sent by a tab (the frame, if any, travels beside it). */
export const outMetaSchema = z.strictObject({
  /** Echo of the task's attempt: results of an abandoned attempt are recognised and dropped. */
  attempt: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  iteration: z.number().int().min(0).max(0xffffffff),
  mb: count,
  dir: z.enum(DIRECTIONS),
  hop: count,
  /** Mean cross-entropy of the microbatch: present exactly when the hop ran the head forward. */
  loss: finite.min(0).max(1000).optional(),
  /** Milliseconds of compute this task took on the tab. */
  computeMs: finite.min(0).max(3_600_000),
  /** The output frame went peer to peer (the task's `sendTo`): no frame travels beside this. */
  sent: sentReportSchema.optional(),
  /** The input frame came peer to peer (the task's `inputFrom`): its digest and norm as received. */
  got: gotReportSchema.optional(),
  /** The task named a peer but the frame travels beside this message: why (docs/p2p.md). */
  fallback: fallbackSchema.optional(),
  /** The task's peer input was missing or failed the hop check: it did not run (docs/p2p.md#trust). */
  refused: refusedReportSchema.optional(),
});
export type OutMeta = z.infer<typeof outMetaSchema>;

export const stepAckSchema = z.strictObject({
  iteration: z.number().int().min(0),
  preClipNorm: finite.min(0),
  postClipNorm: finite.min(0),
  /** Post-clip norm of the block parameters' gradient (CheckFree's weighting); optional for older tabs. */
  blockNorm: finite.min(0).optional(),
  stepMs: finite.min(0),
});
export type StepAck = z.infer<typeof stepAckSchema>;

export const gradNormAckSchema = z.strictObject({
  iteration: z.number().int().min(0),
  /** Global L2 norm of the stage's accumulated gradient (may be non-finite: that is the point). */
  preClipNorm: z.number(),
});
export type GradNormAck = z.infer<typeof gradNormAckSchema>;

/**
 * Bundles a tab uploads (weights, states, gradients) travel in chunks: the coordinator asks for
 * `maxBytes` from `offset`; the tab encodes the bundle when asked for offset 0 and answers every
 * chunk of it from that snapshot. So no socket message is larger than a chunk, whatever the model
 * (coordinator/bundle-transfer.ts).
 */
export interface ChunkRequest {
  offset: number;
  maxBytes: number;
}
export interface Chunk {
  /** Bytes of the whole bundle. */
  total: number;
  offset: number;
  bytes: Uint8Array;
}
export const chunkSchema = z.strictObject({
  total: z.number().int().min(0).max(2 ** 32),
  offset: z.number().int().min(0),
  bytes: z.instanceof(Uint8Array),
});

/** A fingerprint of a replica's weights (shared/model/digest.ts) and its Adam step count. */
export const digestAckSchema = z.strictObject({
  digest: z.string().regex(/^[0-9a-f]{16}$/),
  step: z.number().int().min(0),
});
export type DigestAck = z.infer<typeof digestAckSchema>;

export const statsSchema = z.strictObject({
  computeMs: finite.min(0).max(3_600_000),
  tokensPerSec: finite.min(0).max(1e12),
  /** `--transport p2p|auto`: the tab's per-peer link figures (pair-stats.ts). */
  links: pairStatsSchema.optional(),
});
export type VolunteerStats = z.infer<typeof statsSchema>;

export const okAckSchema = z.union([z.strictObject({ ok: z.literal(true) }), z.strictObject({ ok: z.literal(false), error: str(2000) })]);
export type OkAck = z.infer<typeof okAckSchema>;

export interface TaskMeta {
  /** Increases with every pass the coordinator starts (an abandoned iteration is retried under a new attempt). */
  attempt: number;
  iteration: number;
  mb: number;
  dir: TaskDir;
  /** Index in the forward path (also the stash key). */
  hop: number;
  stage: number;
  segment: z.infer<typeof segmentSchema>;
  /** dLoss/dOutput for a backward hop that starts at the head (1 / microbatches). */
  lossScale?: number;
  /** `--transport p2p|auto`: send the output frame to this peer, not back with `out`. */
  sendTo?: SendTo;
  /** The input frame comes from this peer over WebRTC (the task carries none). */
  inputFrom?: InputFrom;
}

export interface Assignment {
  /** The stage this tab now trains, or null for a spare. */
  stage: number | null;
  config: ResolvedConfig;
  lr: number;
  /** How this tab sends its activations and gradients (the run's `--wire`, docs/wire.md). */
  wire: WireEncoding;
  /**
   * The stage's state as a stage-state bundle (weights, optionally with Adam state to restore
   * exactly); null = build from the seed with a fresh optimizer.
   */
  weights: Uint8Array | null;
  /** true: `weights` is null and the state arrived before, in pieces (`put_bundle_chunk`, coordinator/tabs/bundle-push.ts). */
  staged?: true;
  /** Why: 'start', 'join', 'recovery:<method>', ... */
  reason: string;
  /** A secret proving this assignment after a coordinator restart (absent for spares). */
  resumeToken?: string;
  /**
   * How the stage's replicas combine (the run's `--dp`); absent = exact. In diloco the tab keeps
   * a DilocoReplica whose synced weights start as the weights of this assignment (a joiner then
   * receives the group's outer state with `dp_set_state`).
   */
  dp?: DpSettings;
}

/**
 * all/embed/head: the stage's own weights; state: weights + Adam state (checkpoint, redundant);
 * diloco: the outer state of `--dp diloco` (shared/dp/diloco-state.ts: synced weights, momentum,
 * sync count) a joining sibling needs;
 * replica:*: a copy this tab holds for a neighbour (CheckFree+ embedding/head, redundant stage).
 */
export type WeightParts = 'all' | 'embed' | 'head' | 'state' | 'diloco' | 'replica:embed' | 'replica:head' | 'replica:stage';
export type ReplicaPart = 'embed' | 'head' | 'stage';

export interface RunStatus {
  state: 'waiting' | 'running' | 'paused' | 'recovering';
  iteration: number;
  stages: number;
  /** Volunteers still needed before the run can start or resume. */
  needed: number;
  /** Stages that have waited for a volunteer longer than the coordinator's `--vacancy-alert`. */
  needsVolunteer: number[];
  trainLoss: number | null;
  valLoss: number | null;
  /**
   * SkipPipe (`--skip-ratio`, docs/skippipe.md): the ratio, the intermediate stages trained around
   * because no tab serves them, and how many microbatches each stage ran in the last iteration
   * (null before the first); absent when the run trains full paths.
   */
  skip?: { ratio: number; vacant: number[]; visits: number[] | null };
}

/** One forward hop for the operator's sampler (see `infer`). */
export interface InferRequest {
  stage: number;
  segment: z.infer<typeof segmentSchema>;
  /**
   * After the head: the position whose logits to return (default: the last). The sampler pads its
   * context on the right to a few fixed lengths (causal attention keeps the padding from changing
   * earlier positions), so tabs build position tables for a handful of lengths, not every one.
   */
  position?: number;
}

/** Events the coordinator sends to a volunteer. */
export interface ServerToVolunteer {
  welcome: (info: { volunteerId: string; runId: string }) => void;
  assign: (a: Assignment, ack: (r: OkAck) => void) => void;
  task: (meta: TaskMeta, input: Uint8Array | null, targets: Uint8Array | null) => void;
  /** Barrier phase 1: report the accumulated gradient norm (the coordinator screens outliers). */
  grad_norm: (info: { iteration: number }, ack: (r: GradNormAck | { error: string }) => void) => void;
  /** Barrier phase 2: clip, Adam step. */
  step: (info: { iteration: number }, ack: (r: StepAck | { error: string }) => void) => void;
  abandon: (info: { iteration: number }) => void;
  /**
   * Data parallelism (several replicas of one stage): send the gradient accumulated over the hops
   * this tab ran (a named-tensor bundle), then receive the sum over every replica to step with.
   */
  get_grads: (info: { iteration: number } & ChunkRequest, ack: (r: Chunk | { error: string }) => void) => void;
  set_grads: (info: { iteration: number }, bundle: Uint8Array, ack: (r: OkAck) => void) => void;
  /** Between iterations: the fingerprint of this replica's weights (replicas must match bit for bit). */
  weights_digest: (info: { iteration: number }, ack: (r: DigestAck | { error: string }) => void) => void;
  /** This tab's place in its stage's group of replicas (1-based), sent whenever the group changes. */
  group: (info: GroupInfo) => void;
  /** The stage's own weights (all, or only its embedding/head), or a replica this tab holds. */
  get_weights: (info: { parts: WeightParts } & ChunkRequest, ack: (r: Chunk | { error: string }) => void) => void;
  /**
   * A piece of a large bundle (offset and total in bytes) that the next `assign` or
   * `dp_set_state` with `staged: true` uses (shared/volunteer/staged-bundle.ts): in pieces the
   * heartbeat's pings pass between them (coordinator/tabs/bundle-push.ts).
   */
  put_bundle_chunk: (info: { offset: number; total: number }, bytes: Uint8Array, ack: (r: OkAck) => void) => void;
  /** Keep this bundle as the replica of a neighbour's embedding or head (CheckFree+). */
  put_replica: (info: { part: ReplicaPart }, bundle: Uint8Array, ack: (r: OkAck) => void) => void;
  /**
   * Operator sampling (dashboard): run `segment` of this tab's stage on the input frame (tokens
   * int32 [B,T] or activation float32 [B,T,D]) without stashing or touching gradients. Replies with
   * an 'act' frame: the activation [B,T,D], or after the head only the last position's logits [B,vocab].
   */
  infer: (info: InferRequest, input: Uint8Array, ack: (frame: Uint8Array | { error: string }) => void) => void;
  run_status: (s: RunStatus) => void;
  /**
   * `--dp diloco` (docs/data-parallel.md; the tab's side is shared/dp/diloco-sync-session.ts):
   * uplink chunk `chunk` of this replica's pseudo-gradient for the sync after `iteration`; the
   * averaged chunk back; the outer step; a joiner's outer state (from a sibling's `get_weights
   * diloco`). Failures answer `{ error }`.
   */
  dp_sync_get: (info: SyncChunkRequest, ack: (r: { frame: Uint8Array } | { error: string }) => void) => void;
  dp_sync_put: (info: SyncChunkRequest, frame: Uint8Array, ack: (r: { ok: true } | { error: string }) => void) => void;
  dp_sync_apply: (info: SyncApplyRequest, ack: (r: { ok: true; syncs: number } | { error: string }) => void) => void;
  dp_set_state: (info: { stage: number; staged?: true }, bundle: Uint8Array, ack: (r: { ok: true } | { error: string }) => void) => void;
  rejected: (info: { reason: string; message: string }) => void;
  /** `--transport`: how this tab opens links to its peers (after `welcome`). */
  p2p_config: (c: P2pConfig) => void;
  /**
   * The coordinator checks a frame this tab took from a peer in full (a random sample, or the
   * two ends' digests differ): the frame as received, from the last few kept (docs/p2p.md#trust).
   */
  p2p_frame: (info: { kind: 'act' | 'grad'; attempt: number; iteration: number; mb: number; hop: number }, ack: (frame: Uint8Array | { error: string }) => void) => void;
  /** A WebRTC signal from another tab, relayed (the coordinator sets `from`). */
  'p2p-signal': (s: IncomingSignal) => void;
  /** A waiting task's peer input, relayed because its sender's link broke after the early report (late-fallback.ts). */
  p2p_relayed: (info: RelayedPeerFrame, frame: Uint8Array) => void;
}

export interface GroupInfo {
  stage: number;
  replica: number;
  of: number;
}

/** Events a volunteer sends to the coordinator. */
export interface VolunteerToServer {
  hello: (caps: Capabilities, ack: (r: OkAck) => void) => void;
  out: (meta: OutMeta, frame: Uint8Array | null) => void;
  stats: (s: VolunteerStats) => void;
  /**
   * Leaving on purpose. The coordinator acknowledges once it has what it needs: when this tab is
   * its stage's last replica it first asks for the stage's exact state (the handoff).
   */
  leave: (ack?: (r: OkAck) => void) => void;
  /** A WebRTC signal for tab `to` (validated and forwarded only between tabs that exchange frames). */
  'p2p-signal': (s: OutgoingSignal) => void;
  /** The link broke after this task's early `sent` report: the frame, for the coordinator to relay (late-fallback.ts). */
  p2p_fallback: (info: LateFallback, frame: Uint8Array) => void;
}

/** Limits the coordinator enforces on the socket (frames are bounded by activation size). */
export const MAX_SOCKET_BYTES = 64 * 1024 * 1024;
