/**
 * The fork runner of the churn study (docs/experiments.md, "Churn study"): the quality of a
 * recovery, measured without any wall clock.
 *
 *   1. base runs: failure-free training in plain order (what checkfree and none train with) and
 *      in CheckFree+'s swapped order, with exact snapshots of every stage (weights, Adam state,
 *      last norms; experiments/stage-snapshot.ts) and of the embedding/head replicas at each fork
 *      point, and the validation loss every `evalEvery` iterations;
 *   2. forks: at fork point f, for every lost stage and every strategy, the snapshot is restored,
 *      the stage is failed and recovered exactly as the coordinator would (recoverLocally: the
 *      same plan / average / rebuild), and training continues to f + horizon on the same batches;
 *   3. the setback: iterations lost against the base of the same order (setback.ts).
 *
 * An `exact` fork restores the snapshot and fails nothing: it must reproduce the base run bit for
 * bit (the exact restores, checkpoint and redundant, are this with a rollback or no loss).
 *
 * stage-restore and cpsr (issue 25): the plain base run also checkpoints every stage every
 * `checkpointEvery` iterations (experiments/local-cpsr.ts); the fork restores only the lost stage
 * from its last checkpoint before the fork point (horizon = fork point mod checkpointEvery), cpsr
 * moving its weights forward by the stage's predictor. The predictors are fitted on the history
 * at that last checkpoint (the freshest fit a background fitter can have); the prediction's
 * seconds are recorded (the pricing adds them to the recovery).
 */
import { usesSwap } from '../../shared/run-settings.js';
import { Stage } from '../../shared/model/stage.js';
import { configForStages, getPreset, type ResolvedConfig } from '../../shared/model/config.js';
import type { TokenDataset } from '../../shared/data/dataset.js';
import type { EdgePolicy, RecoveryMethod } from '../../shared/recovery/plan.js';
import { loadDataset } from '../../trainer/corpus-file.js';
import { evaluate, runIteration } from '../../trainer/pipeline.js';
import { LocalReplicaStore, recoverLocally } from '../local-recovery.js';
import { restoreStage, snapshotStage, type StageSnapshot } from '../stage-snapshot.js';
import { LocalCpsr } from '../local-cpsr.js';
import { restoresOnlyLostStage } from '../checkpointed.js';
import { iterationsLost, type CurvePoint } from './setback.js';

/** The rebuild strategies a fork can apply; `exact` restores the snapshot unchanged. */
export const FORK_STRATEGIES = ['checkfree', 'checkfree+', 'none', 'stage-restore', 'cpsr'] as const;
export type ForkStrategy = (typeof FORK_STRATEGIES)[number] | 'exact';
export type Order = 'plain' | 'swap';

export interface ForkStudyConfig {
  stages: number;
  /** Transformer blocks per stage. */
  layersPerStage: number;
  dModel: number;
  nHeads: number;
  seqLen: number;
  microbatches: number;
  batch: number;
  lr: number;
  seed: number;
  lrScale: number;
  replicaEvery: number;
  /** Plain checkfree at the first/last stage. */
  edge: EdgePolicy;
  /** Completed-iteration counts at which forks start. */
  forkPoints: number[];
  /** Iterations a fork trains after the failure. */
  horizon: number;
  /** Base runs evaluate every this many iterations (and at every fork point and fork end). */
  evalEvery: number;
  evalBatches: number;
  strategies: ForkStrategy[];
  /** stage-restore and cpsr: every stage is checkpointed every this many iterations (required for them). */
  checkpointEvery?: number;
  data?: string;
}

export interface BaseRun {
  order: Order;
  curve: CurvePoint[];
  trainLoss: number[];
  /** Median in-process seconds of one iteration (sequential, no pipeline overlap). */
  iterationSeconds: number;
}

export interface ForkRecord {
  order: Order;
  strategy: ForkStrategy;
  fork: number;
  stage: number;
  method: RecoveryMethod | 'exact';
  fallback: boolean;
  /** Averaging weights (next, prev), when averaged. */
  a: number | null;
  b: number | null;
  /** Training loss of the first iteration after the failure, and the base's at that iteration. */
  firstLoss: number;
  baseFirstLoss: number;
  /** Validation loss at fork + horizon, and the base's. */
  at: number;
  loss: number;
  baseLoss: number;
  setback: number;
  gap: number;
  capped: boolean;
  /** stage-restore / cpsr: the checkpoint's iteration the lost stage came back from (null otherwise). */
  restoredFrom: number | null;
  /** Seconds the recovery computed (cpsr: the prediction; 0 otherwise). */
  computeSeconds: number;
}

export function studyModelConfig(c: ForkStudyConfig): ResolvedConfig {
  const tiny = getPreset('tiny');
  return configForStages({ ...tiny, dModel: c.dModel, nHeads: c.nHeads, nLayers: c.stages * c.layersPerStage, seqLen: c.seqLen, seed: c.seed }, c.stages);
}

export function checkForkConfig(c: ForkStudyConfig): void {
  const int = (n: string, v: number, min = 1) => {
    if (!Number.isInteger(v) || v < min) throw new RangeError(`${n} must be an integer >= ${min}, got ${v}`);
  };
  int('stages', c.stages, 2);
  int('horizon', c.horizon);
  int('eval-every', c.evalEvery);
  int('eval-batches', c.evalBatches);
  int('microbatches', c.microbatches);
  if (c.forkPoints.length === 0) throw new RangeError('give at least one fork point');
  for (const f of c.forkPoints) int('fork point', f);
  if (c.strategies.length === 0) throw new RangeError('give at least one strategy');
  if (c.strategies.some((s) => s === 'stage-restore' || s === 'cpsr')) {
    if (c.checkpointEvery === undefined) throw new RangeError('stage-restore and cpsr forks need a checkpoint interval (checkpointEvery)');
    int('checkpoint interval', c.checkpointEvery);
  }
  studyModelConfig(c);
}

interface ForkPointState {
  snaps: StageSnapshot[];
  replicas: LocalReplicaStore;
  /** The checkpoints (and fitted predictors) at the fork point (stage-restore, cpsr). */
  cpsr: LocalCpsr | null;
}

interface Trainer {
  cfg: ResolvedConfig;
  dataset: TokenDataset;
  val: ReturnType<TokenDataset['valBatches']>;
}

function trainer(c: ForkStudyConfig): Trainer {
  const cfg = studyModelConfig(c);
  const { dataset } = loadDataset({ path: c.data, seqLen: cfg.seqLen });
  return { cfg, dataset, val: dataset.valBatches(c.evalBatches, c.batch) };
}

function step(t: Trainer, c: ForkStudyConfig, stages: Stage[], it: number, swap: boolean): number {
  const batches = Array.from({ length: c.microbatches }, (_, mb) => t.dataset.trainBatch(c.seed, it, mb, c.batch));
  return runIteration(stages, batches, { swap, iteration: it }).loss;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};

/** Trains a failure-free base run, keeping snapshots at the fork points. */
function runBase(t: Trainer, c: ForkStudyConfig, order: Order): { base: BaseRun; states: Map<number, ForkPointState>; cpsr: LocalCpsr | null } {
  const swap = order === 'swap';
  const end = Math.max(...c.forkPoints) + c.horizon;
  const evalAt = new Set<number>([0, ...c.forkPoints, ...c.forkPoints.map((f) => f + c.horizon)]);
  for (let i = c.evalEvery; i <= end; i += c.evalEvery) evalAt.add(i);
  const stages = Array.from({ length: c.stages }, (_, i) => new Stage(t.cfg, i, { lr: c.lr }));
  const replicas = new LocalReplicaStore(c.stages, c.replicaEvery);
  replicas.maybeRefresh(stages, 0);
  const curve: CurvePoint[] = [{ iteration: 0, loss: evaluate(stages, t.val) }];
  const trainLoss: number[] = [];
  const secs: number[] = [];
  const states = new Map<number, ForkPointState>();
  const K = c.checkpointEvery ?? 0;
  const ck = !swap && K > 0 && c.strategies.some((s) => s !== 'exact' && restoresOnlyLostStage(s)) ? new LocalCpsr(t.cfg, c.stages, { interval: K, fitStages: [] }) : null;
  // Fit where a fork will restore from: the last checkpoint at or before each fork point.
  const fitAt = new Set(c.strategies.includes('cpsr') ? c.forkPoints.map((f) => f - (f % K)) : []);
  ck?.maybeCheckpoint(stages, 0);
  for (let it = 0; it < end; it++) {
    const t0 = performance.now();
    trainLoss.push(step(t, c, stages, it, swap));
    secs.push((performance.now() - t0) / 1000);
    replicas.maybeRefresh(stages, it + 1);
    if (ck?.maybeCheckpoint(stages, it + 1) && fitAt.has(it + 1)) for (let s = 0; s < c.stages; s++) ck.fit(s);
    if (evalAt.has(it + 1)) curve.push({ iteration: it + 1, loss: evaluate(stages, t.val) });
    if (c.forkPoints.includes(it + 1)) states.set(it + 1, { snaps: stages.map(snapshotStage), replicas: replicas.clone(), cpsr: ck?.clone() ?? null });
  }
  stages.forEach((s) => s.dispose());
  return { base: { order, curve, trainLoss, iterationSeconds: median(secs) }, states, cpsr: ck };
}

/** One fork: restore, fail `stage` and recover it by `strategy` (or nothing: exact), train on. */
function runFork(t: Trainer, c: ForkStudyConfig, base: BaseRun, state: ForkPointState, f: number, stage: number, strategy: ForkStrategy): ForkRecord {
  const swap = base.order === 'swap';
  const stages = state.snaps.map((s) => restoreStage(t.cfg, s));
  const replicas = state.replicas.clone();
  let method: ForkRecord['method'] = 'exact';
  let fallback = false;
  let a: number | null = null;
  let b: number | null = null;
  let restoredFrom: number | null = null;
  let computeSeconds = 0;
  if (strategy !== 'exact' && restoresOnlyLostStage(strategy)) {
    if (!state.cpsr) throw new Error(`no checkpoints kept for ${strategy} forks`);
    const t0 = performance.now();
    const ev = state.cpsr.clone().recover(stages, stage, f, strategy);
    computeSeconds = ev.predicted ? (performance.now() - t0) / 1000 : 0;
    method = strategy;
    fallback = strategy === 'cpsr' && !ev.predicted;
    restoredFrom = ev.from;
  } else if (strategy !== 'exact') {
    const ev = recoverLocally(stages, stage, strategy, {
      lr: c.lr,
      lrScale: strategy === 'none' ? 1 : c.lrScale,
      replicas,
      edge: c.edge,
    });
    ({ method, fallback, a, b } = ev);
  }
  let firstLoss = NaN;
  for (let it = f; it < f + c.horizon; it++) {
    const loss = step(t, c, stages, it, swap);
    if (it === f) firstLoss = loss;
    replicas.maybeRefresh(stages, it + 1);
  }
  const at = f + c.horizon;
  const loss = evaluate(stages, t.val);
  stages.forEach((s) => s.dispose());
  const baseLoss = base.curve.find((p) => p.iteration === at)!.loss;
  const s = iterationsLost(base.curve, at, loss);
  return { order: base.order, strategy, fork: f, stage, method, fallback, a, b, firstLoss, baseFirstLoss: base.trainLoss[f]!, at, loss, baseLoss, setback: s.iterations, gap: s.gap, capped: s.capped, restoredFrom, computeSeconds };
}

/** Which base order a strategy's forks start from. */
export function orderOf(strategy: Exclude<ForkStrategy, 'exact'>): Order {
  return usesSwap({ recovery: strategy }) ? 'swap' : 'plain';
}

export interface ForkStudyPart {
  /** Run only the (fork point, stage) jobs with index % parts === part (index over fork-major order). */
  part: number;
  parts: number;
  onProgress?: (done: number, total: number, r: ForkRecord) => void;
}

export interface ForkStudyResult {
  bases: BaseRun[];
  forks: ForkRecord[];
}

/** Runs the base runs the strategies need, then this part's forks (all of them by default). */
export function runForkStudy(c: ForkStudyConfig, p: ForkStudyPart = { part: 0, parts: 1 }): ForkStudyResult {
  checkForkConfig(c);
  const t = trainer(c);
  const orders: Order[] = [];
  const rebuilds = c.strategies.filter((s): s is Exclude<ForkStrategy, 'exact'> => s !== 'exact');
  if (rebuilds.some((s) => orderOf(s) === 'plain') || c.strategies.includes('exact')) orders.push('plain');
  if (rebuilds.some((s) => orderOf(s) === 'swap')) orders.push('swap');
  const bases: BaseRun[] = [];
  const forks: ForkRecord[] = [];
  const jobs: { f: number; stage: number }[] = [];
  for (const f of c.forkPoints) for (let s = 0; s < c.stages; s++) jobs.push({ f, stage: s });
  const mine = jobs.filter((_, i) => i % p.parts === p.part);
  const total = orders.reduce((n, o) => n + mine.length * rebuilds.filter((s) => orderOf(s) === o).length, 0) + (c.strategies.includes('exact') ? orders.length * mine.filter((j) => j.stage === 0).length : 0);
  let done = 0;
  for (const order of orders) {
    const { base, states, cpsr } = runBase(t, c, order);
    bases.push(base);
    for (const j of mine) {
      const state = states.get(j.f)!;
      const todo: ForkStrategy[] = rebuilds.filter((s) => orderOf(s) === order);
      // One exact fork per fork point and order (it fails nothing, so the stage does not matter).
      if (c.strategies.includes('exact') && j.stage === 0) todo.push('exact');
      for (const s of todo) {
        const r = runFork(t, c, base, state, j.f, j.stage, s);
        forks.push(r);
        p.onProgress?.(++done, total, r);
      }
    }
    cpsr?.dispose(); // the fork points' clones share its predictors
  }
  return { bases, forks };
}

/** The swapped order's own quality cost: iterations the swapped base is behind the plain base. */
export function swapQualityCost(plain: BaseRun, swap: BaseRun): { iteration: number; plainLoss: number; swapLoss: number; setback: number; gap: number }[] {
  return swap.curve
    .filter((p) => p.iteration > 0)
    .map((p) => {
      const s = iterationsLost(plain.curve, p.iteration, p.loss);
      return { iteration: p.iteration, plainLoss: plain.curve.find((q) => q.iteration === p.iteration)?.loss ?? NaN, swapLoss: p.loss, setback: s.iterations, gap: s.gap };
    });
}
