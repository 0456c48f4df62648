/**
 * The modelled wall clock of a churn experiment: what each slot (executed iteration) would cost in a
 * real volunteer swarm. Everything here is a pure function of the run's trace (what was measured
 * and what happened) and the parameters below; docs/experiments.md explains each term.
 *
 * Network (volunteer links; the coordinator and checkpoint storage are assumed well connected):
 *   relay hop       latency + bytes / up                     (activation or gradient, B*T*d*4 bytes)
 *   gather          latency + max(max_i b_i / up, sum b / down)   (volunteers -> coordinator -> one volunteer)
 *   storage upload  latency + max_s b_s / up                 (every stage uploads its own part at once)
 *   storage fetch   latency + b / down
 *
 * Per slot:
 *   iteration       simulateIteration() on the measured (or median) task times, relay hops, the
 *                   step barrier; redundant: every stage also runs its successor's work (compute)
 *                   or ships its state to its predecessor after the step (copy)
 *   recovery        replacement wait (once per slot with a failure, not for a redundant restore
 *                   in compute mode: the copy holder carries on) + the bytes each recovery moves
 *                   (gather) / the checkpoint download (checkpoint, stage-restore, cpsr: the lost
 *                   stages' parts) + its measured compute (cpsr: the prediction)
 *   checkpoint      upload of weights + Adam moments (3 x parameter bytes) of every stage
 *   replicas        CheckFree+ embedding/head replica refresh (owner -> holder, gather)
 */
import { youngDalyIntervalSeconds } from '../shared/recovery/failure-model.js';
import type { RecoveryMethod } from '../shared/recovery/plan.js';
import { simulateIteration, type IterationTiming } from './timeline.js';

export interface NetworkModel {
  /** Volunteer uplink, Mbit/s. */
  upMbps: number;
  /** Volunteer downlink, Mbit/s. */
  downMbps: number;
  /** One-way latency of one transfer (a relay hop through the coordinator), milliseconds. */
  latencyMs: number;
}

export const DEFAULT_NETWORK: NetworkModel = { upMbps: 100, downMbps: 100, latencyMs: 30 };

export interface CostParams {
  network: NetworkModel;
  /** Seconds until a replacement volunteer has joined and can take the lost stage. */
  replacementWaitSeconds: number;
}

export function checkNetwork(n: NetworkModel): void {
  if (!(n.upMbps > 0) || !(n.downMbps > 0)) throw new RangeError(`bandwidths must be > 0 Mbit/s, got up ${n.upMbps}, down ${n.downMbps}`);
  if (!(n.latencyMs >= 0)) throw new RangeError(`latency must be >= 0 ms, got ${n.latencyMs}`);
}

const bits = (bytes: number) => bytes * 8;
const latency = (n: NetworkModel) => n.latencyMs / 1000;
const up = (n: NetworkModel, bytes: number) => bits(bytes) / (n.upMbps * 1e6);
const down = (n: NetworkModel, bytes: number) => bits(bytes) / (n.downMbps * 1e6);

/** One relay hop of `bytes` (sender's uplink). */
export function hopSeconds(n: NetworkModel, bytes: number): number {
  return latency(n) + up(n, bytes);
}

/** Several volunteers send `sourceBytes` (in parallel, each on its uplink) to one volunteer. */
export function gatherSeconds(n: NetworkModel, sourceBytes: number[]): number {
  const real = sourceBytes.filter((b) => b > 0);
  if (real.length === 0) return 0;
  const total = real.reduce((a, b) => a + b, 0);
  return latency(n) + Math.max(up(n, Math.max(...real)), down(n, total));
}

/** Every stage uploads its own part to storage at once. */
export function storageUploadSeconds(n: NetworkModel, perStageBytes: number[]): number {
  return perStageBytes.length ? latency(n) + up(n, Math.max(...perStageBytes)) : 0;
}

/** One volunteer downloads `bytes` from storage. */
export function storageDownloadSeconds(n: NetworkModel, bytes: number): number {
  return bytes > 0 ? latency(n) + down(n, bytes) : 0;
}

/**
 * Young/Daly's checkpoint interval in iterations: the interval in seconds for a checkpoint that
 * costs `checkpointSeconds` when some stage fails with probability S * p_iter per iteration of
 * `iterationSeconds`, divided by the iteration time. Null when no failure is expected (checkpoint
 * never, beyond the initial state). At least 1.
 */
export function checkpointEveryIterations(checkpointSeconds: number, iterationSeconds: number, nStages: number, pIter: number): number | null {
  if (!(iterationSeconds > 0)) throw new RangeError('iteration seconds must be > 0');
  const seconds = youngDalyIntervalSeconds(checkpointSeconds, (nStages * pIter) / iterationSeconds);
  if (!Number.isFinite(seconds)) return null;
  return Math.max(1, Math.round(seconds / iterationSeconds));
}

/** Bytes the model moves, from its shapes. */
export interface ModelBytes {
  /** Parameter bytes of each stage (float32). */
  stage: number[];
  /** One activation or gradient between stages: batch * seq * d_model * 4. */
  activation: number;
  /** Token ids (or targets) of one microbatch: batch * seq * 4. */
  tokens: number;
  /** Embedding and head parameter bytes (what CheckFree+ replicates). */
  embed: number;
  head: number;
}

/** How a recovery was carried out, and what it moved. */
export interface RecoveryCost {
  stage: number;
  method: RecoveryMethod;
  /** The strategy could not apply; the stage was re-initialised from the seed. */
  fallback: boolean;
  /** Bytes from each source volunteer to the replacement (neighbour blocks, replica, redundant copy). */
  sourceBytes: number[];
  /** Bytes of replicas the rebuilt holder takes again from their owners (CheckFree+). */
  replicaRetakeBytes: number[];
  /** Needs a new volunteer (false for a lossless redundant restore: the copy holder carries on). */
  needsReplacement: boolean;
  /** Seconds the recovery computes before the stage is handed over (cpsr: the prediction). */
  computeSeconds?: number;
  description: string;
}

/** What happened in one slot, as far as the cost model is concerned. */
export interface SlotCostInput {
  timing: IterationTiming;
  recoveries: RecoveryCost[];
  /** Checkpoint restore after a failure: the lost stages download their part. */
  checkpointRestoreBytes: number[];
  checkpointSaved: boolean;
  /** Bytes of each replica refreshed after this iteration (one entry per part). */
  replicaRefreshBytes: number[];
}

export interface SlotCost {
  iteration: number;
  recovery: number;
  checkpoint: number;
  replicas: number;
  total: number;
}

/**
 * How redundancy is paid for:
 * - `compute` (Bamboo): every stage also runs its successor's forward and backward and step, so
 *   it holds an always-current copy and takes over a lost successor at once (no replacement wait);
 * - `copy` (what the coordinator's `--recovery redundant` does): after every step each stage ships
 *   its weights + Adam state (3 x parameter bytes) to its predecessor's tab; a lost stage is
 *   restored exactly, onto a replacement volunteer (the wait applies).
 */
export type RedundantCost = 'compute' | 'copy';

export interface CostContext {
  params: CostParams;
  bytes: ModelBytes;
  nStages: number;
  /** The run is the redundant baseline. */
  redundant: boolean;
  /** How redundancy is paid for (default compute). */
  redundantCost?: RedundantCost;
}

/** Modelled seconds of one iteration on `timing` (relay hops, 1F1B overlap, step barrier). */
export function iterationSeconds(ctx: CostContext, timing: IterationTiming): number {
  const n = ctx.params.network;
  const computeCopy = ctx.redundant && (ctx.redundantCost ?? 'compute') === 'compute';
  const copyState = ctx.redundant && ctx.redundantCost === 'copy' && ctx.nStages > 1;
  return (
    simulateIteration({
      nStages: ctx.nStages,
      timing,
      hopSeconds: hopSeconds(n, ctx.bytes.activation),
      inputSeconds: storageDownloadSeconds(n, ctx.bytes.tokens),
      barrierSeconds: 2 * latency(n),
      redundant: computeCopy,
    }).seconds +
    // every stage ships its state to its predecessor at once after the step
    (copyState ? gatherSeconds(n, [3 * Math.max(...ctx.bytes.stage)]) : 0)
  );
}

/** Modelled seconds of one checkpoint (every stage uploads weights + Adam m and v). */
export function checkpointSeconds(ctx: Pick<CostContext, 'params' | 'bytes'>): number {
  return storageUploadSeconds(ctx.params.network, ctx.bytes.stage.map((b) => 3 * b));
}

/** The modelled cost of one slot. `timing` overrides the slot's own (median mode). */
export function slotCost(ctx: CostContext, slot: SlotCostInput, timing: IterationTiming = slot.timing): SlotCost {
  const n = ctx.params.network;
  const iteration = iterationSeconds(ctx, timing);
  let recovery = 0;
  const copyMode = ctx.redundantCost === 'copy';
  const needsReplacement = (r: RecoveryCost) => r.needsReplacement || (copyMode && r.method === 'redundant');
  if (slot.recoveries.some(needsReplacement)) recovery += ctx.params.replacementWaitSeconds;
  for (const r of slot.recoveries) {
    recovery += gatherSeconds(n, r.sourceBytes) + (r.computeSeconds ?? 0);
    if (r.replicaRetakeBytes.length) recovery += Math.max(...r.replicaRetakeBytes.map((b) => gatherSeconds(n, [b])));
  }
  // The lost stages' replacements download their checkpoint parts in parallel.
  if (slot.checkpointRestoreBytes.length) {
    recovery += Math.max(...slot.checkpointRestoreBytes.map((b) => storageDownloadSeconds(n, b)));
  }
  const checkpoint = slot.checkpointSaved ? checkpointSeconds(ctx) : 0;
  const replicas = slot.replicaRefreshBytes.length ? Math.max(...slot.replicaRefreshBytes.map((b) => gatherSeconds(n, [b]))) : 0;
  return { iteration, recovery, checkpoint, replicas, total: iteration + recovery + checkpoint + replicas };
}
