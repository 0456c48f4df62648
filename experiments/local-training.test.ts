/**
 * End-to-end CheckFree / CheckFree+ on in-process stages: a stage fails at the start of iteration
 * K (weights and optimizer state gone), is rebuilt, and training continues CONTINUE iterations.
 * The recovered run must end within 10% of an identical run without the failure (mean train
 * loss over the last 5 iterations; both runs see exactly the same batches). The failure-free
 * baselines (one plain, one swapped) are computed once and shared, and each failure run forks
 * from its baseline's state at K (weights, Adam state, last gradient norms, CheckFree+'s replicas), since the first K
 * iterations are the same.
 *
 * Also checked: the loss of the first iteration after recovery stays within 5% of the baseline's.
 * (At this early point the tiny model's blocks are still close to their init, so even re-initialising
 * an intermediate stage from the seed passes the 10% test; re-initialising the head stage does not.)
 *
 * K = 17 so that CheckFree+'s replicas (refreshed every 5 iterations) are 2 iterations old when
 * the edge stage is lost, as they usually would be.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { useNodeBackend } from '../trainer/node-backend.js';
import { evaluate, runIteration } from '../trainer/pipeline.js';
import { loadDataset } from '../trainer/corpus-file.js';
import { DEFAULT_SETTINGS, modelConfigOf, type RecoveryStrategy } from '../shared/run-settings.js';
import { Stage, type GradNorms, type NamedWeights, type OptimizerState } from '../shared/model/stage.js';
import { LocalReplicaStore, recoverLocally, type LocalRecoveryEvent } from './local-recovery.js';

// tiny preset, 4 stages; 2 microbatches x 4 sequences keeps an iteration near 0.4 s on wasm.
const settings = { ...DEFAULT_SETTINGS, stages: 4, microbatches: 2, batch: 4 };
const K = 17;
const CONTINUE = 30;
const REPLICA_EVERY = 5;
const TAIL = 5;

interface RunResult {
  losses: number[];
  valLoss: number;
  event: LocalRecoveryEvent | null;
  seconds: number;
}

const copyOf = (w: NamedWeights): NamedWeights => Object.fromEntries(Object.entries(w).map(([n, v]) => [n, v.slice()]));

/** The failure-free run's state at the start of iteration K: every failure run forks from it. */
interface Fork {
  losses: number[];
  weights: NamedWeights[];
  optimizer: OptimizerState[];
  /** Each stage's last gradient norms (CheckFree weights its neighbours by them). */
  norms: (GradNorms | null)[];
  store: LocalReplicaStore | null;
  seconds: number;
}

/**
 * Trains iterations [from, K + CONTINUE) (a failure run starts at `fork`, which the baseline
 * recorded at K: the first K iterations are the same in both, so they run once per order).
 */
function train(opts: { swap: boolean; fork?: Fork; failure?: { stage: number; strategy: RecoveryStrategy } }): RunResult & { fork: Fork | null } {
  const t0 = Date.now();
  const cfg = modelConfigOf(settings);
  const { dataset } = loadDataset({ seqLen: cfg.seqLen });
  const stages = Array.from({ length: settings.stages }, (_, i) => new Stage(cfg, i, { lr: settings.lr }));
  let store = opts.swap ? new LocalReplicaStore(settings.stages, REPLICA_EVERY) : null;
  const losses: number[] = [];
  let from = 0;
  if (opts.fork) {
    opts.fork.weights.forEach((w, i) => stages[i]!.setWeights(w));
    opts.fork.optimizer.forEach((o, i) => stages[i]!.setOptimizerState(o));
    opts.fork.norms.forEach((n, i) => (stages[i]!.lastNorms = n && { ...n }));
    store = opts.fork.store?.clone() ?? null;
    losses.push(...opts.fork.losses);
    from = K;
  } else {
    store?.maybeRefresh(stages, 0);
  }
  let event: LocalRecoveryEvent | null = null;
  let fork: Fork | null = null;
  for (let it = from; it < K + CONTINUE; it++) {
    if (it === K && !opts.fork) {
      fork = { losses: [...losses], weights: stages.map((s) => copyOf(s.getWeights())), optimizer: stages.map((s) => s.getOptimizerState()), norms: stages.map((s) => s.lastNorms && { ...s.lastNorms }), store: store?.clone() ?? null, seconds: (Date.now() - t0) / 1000 };
    }
    if (opts.failure && it === K) {
      event = recoverLocally(stages, opts.failure.stage, opts.failure.strategy, { lr: settings.lr, lrScale: 1.1, replicas: store ?? undefined });
    }
    const batches = Array.from({ length: settings.microbatches }, (_, mb) => dataset.trainBatch(settings.seed, it, mb, settings.batch));
    losses.push(runIteration(stages, batches, { swap: opts.swap, iteration: it }).loss);
    store?.maybeRefresh(stages, it + 1);
  }
  const valLoss = evaluate(stages, dataset.valBatches(4, settings.batch));
  stages.forEach((s) => s.dispose());
  return { losses, valLoss, event, seconds: (Date.now() - t0) / 1000 + (opts.fork?.seconds ?? 0), fork };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const tail = (r: RunResult) => mean(r.losses.slice(-TAIL));

const baselines = new Map<boolean, RunResult & { fork: Fork | null }>();
const baseline = (swap: boolean) => {
  if (!baselines.has(swap)) baselines.set(swap, train({ swap }));
  return baselines.get(swap)!;
};
const summary: string[] = [];

beforeAll(async () => {
  await useNodeBackend('wasm');
});

afterAll(() => {
  console.log(['recovery vs failure-free run (train loss; jump = loss at iteration K minus baseline at K):', ...summary].join('\n'));
});

describe(`a stage lost at iteration ${K}, recovered, ${CONTINUE} more iterations`, () => {
  const cases = [
    { strategy: 'checkfree', stage: 2, swap: false, method: 'average' },
    { strategy: 'checkfree+', stage: 0, swap: true, method: 'copy' },
    { strategy: 'checkfree+', stage: 3, swap: true, method: 'copy' },
  ] as const;

  for (const c of cases) {
    it(`${c.strategy}, stage ${c.stage}: within 10% of the failure-free run`, () => {
      const base = baseline(c.swap);
      const run = train({ swap: c.swap, fork: base.fork!, failure: { stage: c.stage, strategy: c.strategy } });
      expect(run.event).toMatchObject({ stage: c.stage, method: c.method, fallback: false, fromSeed: [] });
      const rel = Math.abs(tail(run) - tail(base)) / tail(base);
      summary.push(
        `  ${c.strategy.padEnd(10)} stage ${c.stage}: before ${base.losses[K - 1]!.toFixed(3)}, ` +
          `at K ${run.losses[K]!.toFixed(3)} vs ${base.losses[K]!.toFixed(3)} (jump ${(run.losses[K]! - base.losses[K]!).toFixed(3)}), ` +
          `last-${TAIL} mean ${tail(run).toFixed(3)} vs ${tail(base).toFixed(3)} (${(100 * rel).toFixed(1)}%), ` +
          `val ${run.valLoss.toFixed(3)} vs ${base.valLoss.toFixed(3)}, a/b ${run.event!.a?.toFixed(3) ?? '-'}/${run.event!.b?.toFixed(3) ?? '-'}, ` +
          `${(run.event!.bytes / 1024).toFixed(0)} KiB in, ${run.seconds.toFixed(1)} s`,
      );
      expect(Number.isFinite(tail(run))).toBe(true);
      expect(rel).toBeLessThan(0.1);
      // The iteration right after recovery: a seed re-init of the head stage costs ~+60% here
      // (5.37 vs 3.33); the recovered stage must stay close to the failure-free run.
      expect(Math.abs(run.losses[K]! - base.losses[K]!) / base.losses[K]!).toBeLessThan(0.05);
    });
  }
});
