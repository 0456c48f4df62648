/**
 * Recovery of in-process stages (tests, the local trainer, churn experiments): the same plan and
 * rebuild the coordinator uses, applied to a Stage[] in one process.
 *
 * Failure model (docs/research.md): a failed stage loses its weights and optimizer state, and the
 * failure strikes at the start of an iteration, before microbatch 0, so no microbatch is in
 * flight. recoverLocally disposes the lost Stage, rebuilds its weights from the survivors, and puts
 * a new Stage with a fresh Adam at `lrScale * lr` in its place. The replicas the lost stage's tab
 * held are lost with it and are re-taken from the live owners once it is back.
 */
import { Stage } from '../shared/model/stage.js';
import type { GradNorms, NamedWeights } from '../shared/model/stage.js';
import type { RecoveryStrategy } from '../shared/run-settings.js';
import type { AverageWeighting } from '../shared/recovery/average.js';
import { planRecovery, type EdgePolicy, type RecoveryMethod } from '../shared/recovery/plan.js';
import { rebuildStageWeights } from '../shared/recovery/rebuild.js';
import {
  extractReplica,
  replicaDue,
  replicaHolders,
  replicaOwner,
  replicasHeldBy,
  type ReplicaPart,
  type StageReplicas,
} from '../shared/recovery/replicas.js';
import { RecoveryError } from '../shared/recovery/errors.js';

/** The reference configs scale the recovered stage's learning rate by 1.1 to 1.2. */
export const DEFAULT_LR_SCALE = 1.1;

/**
 * Keeps the CheckFree+ embedding/head replicas of in-process stages, refreshed every `every`
 * iterations from the live owners (stage 0's embed.*, stage S-1's head.*).
 */
export class LocalReplicaStore {
  /** Completed-iteration count of the last full refresh (null before the first). */
  lastRefresh: number | null = null;
  /** Bytes shipped to holders so far (what refreshes would cost on the wire). */
  bytesSent = 0;
  private held = new Map<number, StageReplicas>();

  constructor(readonly nStages: number, readonly every: number) {
    replicaDue(0, every); // validates `every`
    replicaHolders(nStages); // validates `nStages`
  }

  /** Refreshes every replica when `iteration` (completed iterations) is due; returns whether it did. */
  maybeRefresh(stages: Stage[], iteration: number): boolean {
    if (!replicaDue(iteration, this.every)) return false;
    this.refresh(stages, iteration);
    return true;
  }

  /** Takes every replica from its live owner now. */
  refresh(stages: Stage[], iteration: number): void {
    this.checkStages(stages);
    const holders = replicaHolders(this.nStages);
    for (const part of ['embed', 'head'] as const) {
      const h = holders[part];
      if (h !== null) this.take(stages, part, h);
    }
    this.lastRefresh = iteration;
  }

  /** Re-takes, from the live owners, the replicas `holder` should hold (after it was rebuilt). */
  refreshHeldBy(stages: Stage[], holder: number): void {
    this.checkStages(stages);
    for (const part of replicasHeldBy(holder, this.nStages)) this.take(stages, part, holder);
  }

  /** The holder's tab is gone: so are its replicas. */
  dropHeldBy(holder: number): void {
    this.held.delete(holder);
  }

  /** The replicas `holder` holds (undefined when none). */
  get(holder: number): StageReplicas | undefined {
    return this.held.get(holder);
  }

  /** Every holder's replicas, keyed by holder stage (what rebuildStageWeights reads). */
  all(): Record<number, StageReplicas> {
    return Object.fromEntries(this.held);
  }

  /** A store holding deep copies of this one's replicas (a fork of the run starts from it). */
  clone(): LocalReplicaStore {
    const c = new LocalReplicaStore(this.nStages, this.every);
    const copy = (w: NamedWeights | undefined) => (w ? Object.fromEntries(Object.entries(w).map(([n, v]) => [n, v.slice()])) : undefined);
    for (const [h, r] of this.held) c.held.set(h, { ...(r.embed ? { embed: copy(r.embed) } : {}), ...(r.head ? { head: copy(r.head) } : {}) });
    c.lastRefresh = this.lastRefresh;
    return c;
  }

  private take(stages: Stage[], part: ReplicaPart, holder: number): void {
    const owner = stages[replicaOwner(part, this.nStages)]!;
    const r = extractReplica(owner.getWeights(), part);
    this.held.set(holder, { ...this.held.get(holder), [part]: r.weights });
    this.bytesSent += r.bytes;
  }

  private checkStages(stages: Stage[]): void {
    if (stages.length !== this.nStages) {
      throw new RecoveryError(`replica store is for ${this.nStages} stages, got ${stages.length}`);
    }
  }
}

/** What happened in one recovery (for logs, the event feed and experiments). */
export interface LocalRecoveryEvent {
  stage: number;
  strategy: RecoveryStrategy;
  method: RecoveryMethod;
  /** Stages whose blocks were used. */
  sources: number[];
  /** Stage whose replica supplied the embedding/head, when one was used. */
  replicaSource: number | null;
  /** True when the strategy could not apply and the stage was re-initialised from the seed. */
  fallback: boolean;
  /** Bytes of source tensors used. */
  bytes: number;
  /** Averaging weights of the next (a) and previous (b) stage; null unless averaged. */
  a: number | null;
  b: number | null;
  weighting: AverageWeighting | null;
  /** Learning rate of the recovered stage's fresh optimizer. */
  lr: number;
  /** Parameters that came from the seed init. */
  fromSeed: string[];
  description: string;
  notes: string[];
}

export interface LocalRecoveryOptions {
  /** The run's base learning rate. */
  lr: number;
  /** The recovered stage trains at lrScale * lr (default 1.1). */
  lrScale?: number;
  /** CheckFree+ replicas: a store, or replicas by holder stage. */
  replicas?: LocalReplicaStore | Partial<Record<number, StageReplicas>>;
  /** Neighbour weighting for the average (default post-clip). */
  weighting?: AverageWeighting;
  /** Plain checkfree at the first/last stage (default reinit, the paper's definition). */
  edge?: EdgePolicy;
}

/**
 * Fails stage `lost` (its weights and optimizer state are gone) and recovers it under `strategy`,
 * replacing `stages[lost]` in place. checkpoint and redundant need storage the coordinator owns
 * and are refused (RecoveryError) before anything is touched.
 */
export function recoverLocally(
  stages: Stage[],
  lost: number,
  strategy: RecoveryStrategy,
  opts: LocalRecoveryOptions,
): LocalRecoveryEvent {
  const plan = planRecovery(strategy, lost, stages.length, { edge: opts.edge });
  if (plan.method === 'checkpoint' || plan.method === 'redundant') {
    throw new RecoveryError(`recoverLocally does not implement ${plan.method} recovery (the coordinator does)`);
  }
  const lrScale = opts.lrScale ?? DEFAULT_LR_SCALE;
  if (!(opts.lr > 0) || !(lrScale > 0)) throw new RecoveryError(`lr and lrScale must be > 0, got ${opts.lr} and ${lrScale}`);

  // Sources first: the survivors' weights and norms as they stand at the start of the iteration.
  const weights: Record<number, NamedWeights> = {};
  const norms: Record<number, GradNorms | null> = {};
  for (const s of plan.blockSources) {
    weights[s] = stages[s]!.getWeights();
    norms[s] = stages[s]!.lastNorms;
  }
  const store = opts.replicas instanceof LocalReplicaStore ? opts.replicas : null;
  const replicas = opts.replicas instanceof LocalReplicaStore ? opts.replicas.all() : (opts.replicas ?? {});

  // The failure: weights, optimizer state and any replicas the stage's tab held are gone.
  const config = stages[lost]!.config;
  stages[lost]!.dispose();
  store?.dropHeldBy(lost);

  const r = rebuildStageWeights(plan, { config, weights, norms, replicas, weighting: opts.weighting });
  const lr = lrScale * opts.lr;
  const fresh = new Stage(config, lost, { lr });
  fresh.setWeights(r.weights);
  fresh.resetOptimizer(lr);
  stages[lost] = fresh;
  store?.refreshHeldBy(stages, lost);

  return {
    stage: lost,
    strategy,
    method: plan.method,
    sources: plan.blockSources,
    replicaSource: r.details.sources.some((s) => s.part !== 'blocks') ? plan.replicaSource : null,
    fallback: plan.fallback,
    bytes: r.bytesIn,
    a: r.details.a,
    b: r.details.b,
    weighting: r.details.weighting,
    lr,
    fromSeed: r.details.fromSeed,
    description: plan.description,
    notes: r.details.notes,
  };
}
