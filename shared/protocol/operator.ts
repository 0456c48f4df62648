/**
 * The operator's socket.io namespace (`/operator`): what the dashboard receives and the actions it
 * may ask for. Only a socket that presented the operator token in its handshake
 * (`auth: { token }`) ever joins this namespace; volunteers live in the default namespace, where
 * none of these events exist.
 *
 * Coordinator -> dashboard (pushed, never polled):
 *   swarm      the swarm snapshot (stages in pipeline order with their tabs, spares, run state,
 *              control state), whenever it changes
 *   iteration  each completed iteration (losses, time, tokens, per-stage compute)
 *   event      each event-log entry (joins, leaves, assignments, recoveries, rejections, ...)
 * Dashboard -> coordinator (each answers through its ack with `{ ok: true, ... }` or
 * `{ ok: false, error }`): init, pause, set_strategy, inject_failure, churn, sample (optionally through a subset of stages), partial_eval, runs, run.
 *
 * Payloads from the dashboard are validated with the zod schemas below (the token proves who the
 * sender is, not that the payload is well formed).
 */
import { z } from 'zod';
import type { GradNorms } from '../model/stage.js';
import type { RunStatus } from './events.js';
import { RECOVERY_STRATEGIES, type RecoveryStrategy } from '../run-settings.js';


/** Event-log kinds (coordinator/events-log.ts); operator actions are logged as 'run' with data.operator. */
export const EVENT_KINDS = ['join', 'leave', 'assign', 'recovery', 'rejected', 'run', 'quarantine', 'alert'] as const;

export interface TabInfo {
  /** Public short id of the volunteer. */
  id: string;
  backend: string;
  /** GPU adapter (vendor / architecture) or null (wasm, cpu, or not reported). */
  adapter: string | null;
  throughputGflops: number;
  /** Compute of its last iteration (tasks + optimizer step), ms. */
  stepMs: number | null;
  tokensPerSec: number | null;
  /** Epoch ms when it joined (the dashboard ticks "time connected" from this). */
  joinedAt: number;
  connectedSeconds: number;
  /** Its task time as the coordinator measures it (ms; null before its first task). */
  taskMs: number | null;
  /** Its share of its stage's tasks so far (0..1; null for a spare). */
  share: number | null;
}

export interface StageSlot {
  stage: number;
  /**
   * training: a tab serves it. rebuilding: lost, recovery is fetching/rebuilding its weights.
   * waiting: weights ready (rebuilt or fresh), waiting for a volunteer to take it.
   */
  state: 'training' | 'rebuilding' | 'waiting';
  /** The replica that has served it longest (null when vacant). */
  tab: TabInfo | null;
  /** Every replica of the stage's group, in the order they joined. */
  tabs: TabInfo[];
  /** Why it is waiting ('start', 'recovery:average', ...). */
  reason: string | null;
}

export type ChurnConfig =
  | { mode: 'off' }
  | { mode: 'iteration'; probability: number; seed: number }
  | { mode: 'hourly'; rate: number; seed: number };

export interface SwarmSnapshot {
  runId: string;
  time: number;
  status: RunStatus;
  /** Paused by the operator (the run may also be held briefly during an export). */
  paused: boolean;
  strategy: RecoveryStrategy;
  /** What set_strategy accepts. */
  strategies: readonly RecoveryStrategy[];
  /** The microbatch order is fixed at start: CheckFree+ swapping only if the run started with it. */
  swap: boolean;
  churn: ChurnConfig & { failures: number };
  stages: StageSlot[];
  spares: TabInfo[];
  sampling: boolean;
  exporting: boolean;
  /** `--recovery cpsr` / `stage-restore`: the planner, the background fits, the last restore (absent otherwise). */
  cpsr?: CpsrStatus | null;
  /** How activations travel (`--transport`) and what fell back to the relay; absent from older coordinators. */
  p2p?: P2pSummary;
}

/** CPSR on the dashboard (coordinator/recovery/cpsr-strategy.ts). */
export interface CpsrStatus {
  /** The checkpoint interval in force and where it came from (eq. 16, or Young/Daly and why). */
  plan: { interval: number; source: 'cpsr' | 'young-daly'; reason: string | null; cpsr: number | null; youngDaly: number } | null;
  /** Each stage's latest background fit: its held-out error relative to the plain restore's. */
  fits: { stage: number; usable: boolean; valRatio: number | null; checkpoints: number; lastIteration: number | null; seconds: number }[];
  /** The fitting worker: its peak memory (bytes), seconds spent fitting, its last failure. */
  worker: { peakBytes: number; fitSeconds: number; lastFailure: string | null } | null;
  /** The last stage restored: at which iteration, from which checkpoint, how far predicted. */
  lastRestore: { stage: number; iteration: number; checkpoint: number; horizon: number; predicted: boolean; valRatio: number | null; at: number } | null;
}

/** The dashboard's view of `--transport p2p|auto` (docs/p2p.md). */
export interface P2pSummary {
  transport: 'relay' | 'p2p' | 'auto';
  /** Frames meant for a peer that went through the relay, by reason (link failure, no WebRTC, back-off). */
  fallbacks: Record<string, number>;
  /** Pairs relay-only now (auto's back-off): `a|b`, seconds left, failures in a row. */
  backedOff: { pair: string; seconds: number; failures: number }[];
  /** Each tab's links as its last heartbeat reported them (coordinator/training/pair-link-stats.ts); absent from older coordinators. */
  pairs?: { from: string; to: string; fromStage: number | null; toStage: number | null; state: 'connecting' | 'open' | 'down'; rttMs: number | null; frameMs: number | null; framesSent: number; bytesSent: number; framesReceived: number; bytesReceived: number }[];
}

export interface StageTiming {
  stage: number;
  volunteer: string | null;
  /** The tab's compute for this iteration (forward/backward tasks + optimizer step), ms. */
  computeMs: number | null;
  /** The stage's gradient norms of this step (null in rows stored before they were recorded). */
  norms: GradNorms | null;
}

/** One completed iteration: what the scheduler records, SQLite stores and the dashboard draws. */
export interface IterationRecord {
  iteration: number;
  trainLoss: number;
  valLoss: number | null;
  seconds: number;
  /** Epoch ms when it completed. */
  time: number;
  tokens: number;
  stages: StageTiming[];
  /** `--dp diloco`: the sync that followed this iteration's step, if one did (coordinator/training/diloco-sync.ts). */
  dpSync?: { bytes: number; seconds: number; drift: number[] };
  /**
   * SkipPipe (docs/skippipe.md): the intermediate stages skipped because no tab served them
   * (`vacant`) and each stage's microbatches; the paths themselves are in the recorded schedule
   * (`/api/operator/schedule`), not in every record the dashboards receive.
   */
  skip?: { vacant: number[]; visits: number[] };
}

export interface EventRow {
  time: number;
  kind: string;
  message: string;
  data?: Record<string, unknown>;
}

export interface RunSummary {
  id: string;
  created: number;
  /** Last time anything was written for this run. */
  updated: number;
  settings: Record<string, unknown>;
  iterations: number;
  lastTrainLoss: number | null;
  lastValLoss: number | null;
  /** True for the run this coordinator is driving now. */
  live: boolean;
}

export interface RunDetail {
  run: RunSummary;
  iterations: IterationRecord[];
  events: EventRow[];
}

export interface OperatorInit {
  runId: string;
  settings: Record<string, unknown>;
  swarm: SwarmSnapshot;
  iterations: IterationRecord[];
  events: EventRow[];
  runs: RunSummary[];
}

export const pauseSchema = z.strictObject({ paused: z.boolean() });
export const strategySchema = z.strictObject({ strategy: z.enum(RECOVERY_STRATEGIES) });
export const injectSchema = z.strictObject({ stage: z.number().int().min(0).max(0xffff) });
export const churnSchema = z.discriminatedUnion('mode', [
  z.strictObject({ mode: z.literal('off') }),
  z.strictObject({ mode: z.literal('iteration'), probability: z.number().min(0).max(1), seed: z.number().int().min(0).max(0xffffffff) }),
  z.strictObject({ mode: z.literal('hourly'), rate: z.number().min(0).max(1), seed: z.number().int().min(0).max(0xffffffff) }),
]);
export const sampleSchema = z.strictObject({
  prompt: z.string().max(2000),
  /** Bytes to generate (byte tokenizer: one token per byte). */
  length: z.number().int().min(1).max(512),
  /** 0 = greedy (argmax). */
  temperature: z.number().min(0).max(5),
  seed: z.number().int().min(0).max(0xffffffff).optional(),
  /** SkipPipe: sample through these stages only (a partial model; stage 0 and the last included). */
  stages: z.array(z.number().int().min(0).max(0xffff)).min(1).max(256).optional(),
});
/** SkipPipe: the validation loss of a subset of the stages (coordinator/operator/partial-eval.ts). */
export const partialEvalSchema = z.strictObject({ stages: z.array(z.number().int().min(0).max(0xffff)).min(1).max(256) });
export const runIdSchema = z.strictObject({ runId: z.string().min(1).max(64) });

export type SampleRequest = z.infer<typeof sampleSchema>;

export interface SampleResult {
  prompt: string;
  /** The generated continuation only. */
  text: string;
  tokens: number[];
  ms: number;
  /** Iteration the swarm was at when sampling began. */
  iteration: number;
}

/** A partial model's validation loss next to the full model's (null: a stage has no tab), on the same weights. */
export interface PartialEvalResult {
  /** The block order evaluated. */
  stages: number[];
  iteration: number;
  loss: number;
  fullLoss: number | null;
  /** exp(loss - fullLoss): the partial model's perplexity over the full model's. */
  perplexityRatio: number | null;
}

export type Ack<T = object> = ({ ok: true } & T) | { ok: false; error: string };

export interface ServerToOperator {
  swarm: (s: SwarmSnapshot) => void;
  iteration: (r: IterationRecord) => void;
  event: (e: EventRow) => void;
}

export interface OperatorToServer {
  init: (ack: (r: Ack<{ init: OperatorInit }>) => void) => void;
  pause: (p: z.infer<typeof pauseSchema>, ack: (r: Ack) => void) => void;
  set_strategy: (p: z.infer<typeof strategySchema>, ack: (r: Ack) => void) => void;
  inject_failure: (p: z.infer<typeof injectSchema>, ack: (r: Ack<{ volunteer: string }>) => void) => void;
  churn: (p: ChurnConfig, ack: (r: Ack) => void) => void;
  sample: (p: SampleRequest, ack: (r: Ack<{ result: SampleResult }>) => void) => void;
  partial_eval: (p: z.infer<typeof partialEvalSchema>, ack: (r: Ack<{ result: PartialEvalResult }>) => void) => void;
  runs: (ack: (r: Ack<{ runs: RunSummary[] }>) => void) => void;
  run: (p: z.infer<typeof runIdSchema>, ack: (r: Ack<{ detail: RunDetail }>) => void) => void;
}
