/**
 * The churn study (`npm run study`; docs/experiments.md, "Churn study"):
 *
 *   1. quality of a recovery, by forking (fork.ts, in worker processes): setbacks in iterations
 *      per strategy and lost stage, and the swapped order's own quality cost;
 *   2. wall clock in the paper's regime (pricer.ts): the measured setbacks with the paper's
 *      per-iteration failure probabilities, checkpoint cost and interval, redundant overhead,
 *      replacement wait and the swapped order's hop overhead (hops.ts), as ratios to the iteration
 *      time, by Monte Carlo; swept, with the winner of every setting;
 *   3. validation on the real swarm (swarm.ts): the coordinator and Node volunteers as processes
 *      under the operator's churn, one run per strategy; the prediction priced from that run's
 *      measured quantities and the setbacks of a fork study of the same model must contain the
 *      measured time to target within its 5-95% band.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { usesSwap, type RecoveryStrategy } from '../../shared/run-settings.js';
import { lineChart, type Series } from '../svg.js';
import { STRATEGY_COLORS } from '../report.js';
import { FORK_STRATEGIES, swapQualityCost, type BaseRun, type ForkRecord, type ForkStudyConfig, type ForkStudyResult } from './fork.js';
import { firstReached, iterationsLost } from './setback.js';
import { price, swarmFailureRate, youngDalyIterations, type PriceInput, type PriceResult } from './pricer.js';
import { hopsPerMicrobatch, swapOverhead } from './hops.js';
import { runSwarm, type SwarmRunOptions, type SwarmRunResult } from './swarm.js';

const ROOT = new URL('../..', import.meta.url).pathname;

/** The paper's per-iteration failure probabilities of its 500M runs (docs/research.md). */
export const PAPER_RATES = [
  { hourly: 5, p: 0.0009 },
  { hourly: 10, p: 0.002 },
  { hourly: 16, p: 0.004 },
  { hourly: 33, p: 0.01 },
] as const;

export interface PricingOptions {
  /** Iterations the failure-free plain run needs to reach the target. */
  targetIterations: number;
  runs: number;
  /** Checkpoint cost / iteration time. */
  checkpointCosts: number[];
  /** Checkpoint intervals (iterations); 0 = Young/Daly. */
  intervals: number[];
  /** Redundant computation's overhead per iteration (fraction). */
  redundantOverheads: number[];
  /** Replacement wait + transfer / iteration time. */
  waits: number[];
  /** Relay time of one hop / one block-forward time, for the swapped order's overhead. */
  hopRatios: number[];
  /** Microbatches per iteration for the swapped order's overhead (the paper's 4). */
  microbatches: number;
  /** The headline setting: one value of each sweep. */
  central: { checkpointCost: number; redundantOverhead: number; wait: number; hopRatio: number };
}

export interface ValidationOptions {
  fork: ForkStudyConfig;
  /** Iteration at which the failure-free run's validation loss defines the target. */
  targetIteration: number;
  strategies: RecoveryStrategy[];
  run: Omit<SwarmRunOptions, 'strategy' | 'targetLoss' | 'stages' | 'microbatches' | 'batch' | 'seqLen' | 'lr' | 'seed' | 'evalBatches' | 'replicaEvery'>;
  runs: number;
}

export interface StudyOptions {
  fork: ForkStudyConfig;
  workers: number;
  pricing: PricingOptions;
  validation: ValidationOptions | null;
  out: string | null;
  /** Read the fork studies a previous run with the same config left under `out`/work*. */
  reuseForks: boolean;
  seed: number;
  log: (line: string) => void;
}

export interface PricedRow {
  hourly: number;
  p: number;
  checkpointCost: number;
  redundantOverhead: number;
  wait: number;
  hopRatio: number;
  strategy: string;
  /** Checkpoint interval in iterations (Young/Daly's for checkpoint@yd); null for the others. */
  interval: number | null;
  mean: number;
  p05: number;
  p95: number;
  failures: number;
}

export interface ValidationRow {
  strategy: RecoveryStrategy;
  failures: number;
  measured: number | null;
  predicted: number;
  p05: number;
  p95: number;
  within: boolean;
  iterationSeconds: number;
  recoverySeconds: number;
}

export interface StudyResult {
  forks: ForkRecord[];
  bases: BaseRun[];
  swapCost: ReturnType<typeof swapQualityCost>;
  swapOverheads: { hopRatio: number; overhead: number }[];
  priced: PricedRow[];
  validation: { rows: ValidationRow[]; runs: SwarmRunResult[]; forks: ForkRecord[]; target: number } | null;
  summary: string;
}

/** Setbacks scored again against the base of each fork's order (setback.ts's current definition). */
export function rescore(r: ForkStudyResult): ForkStudyResult {
  const forks = r.forks.map((f) => {
    const base = r.bases.find((b) => b.order === f.order)!;
    const s = iterationsLost(base.curve, f.at, f.loss);
    return { ...f, setback: s.iterations, gap: s.gap, capped: s.capped };
  });
  return { bases: r.bases, forks };
}

/**
 * Runs the fork study in `workers` processes and merges their results (bases from part 0). With
 * `reuse`, the parts a previous run left in `dir` are read instead when its config is the same.
 */
export async function forkInWorkers(c: ForkStudyConfig, workers: number, dir: string, log: (l: string) => void, reuse = false): Promise<ForkStudyResult> {
  mkdirSync(dir, { recursive: true });
  const cfgFile = join(dir, 'fork-config.json');
  if (reuse && existsSync(cfgFile) && readFileSync(cfgFile, 'utf8') === JSON.stringify(c)) {
    const files = readdirSync(dir).filter((f) => /^fork-part-\d+\.json$/.test(f)).sort();
    const parts = files.map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as ForkStudyResult);
    const n = parts.length;
    if (n > 0 && files.every((f, i) => f === `fork-part-${i}.json`) && parts.every((p) => p.forks.length > 0)) {
      log(`  reusing ${n} fork part(s) from ${dir}`);
      return rescore({ bases: parts[0]!.bases, forks: parts.flatMap((p) => p.forks) });
    }
  }
  for (const f of existsSync(dir) ? readdirSync(dir) : []) if (/^fork-part-\d+\.json$/.test(f)) rmSync(join(dir, f));
  writeFileSync(cfgFile, JSON.stringify(c));
  const parts = await Promise.all(
    Array.from({ length: workers }, (_, k) => {
      const outFile = join(dir, `fork-part-${k}.json`);
      return new Promise<ForkStudyResult>((resolve, reject) => {
        const p = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'experiments/study/fork-worker.ts'), cfgFile, String(k), String(workers), outFile], {
          cwd: ROOT,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let err = '';
        p.stdout!.on('data', (d: Buffer) => String(d).trim().split('\n').forEach((l) => log(`  [${k}] ${l}`)));
        p.stderr!.on('data', (d) => (err = (err + d).slice(-4000)));
        const kill = () => p.kill('SIGKILL');
        process.once('exit', kill);
        p.once('exit', async (code) => {
          process.removeListener('exit', kill);
          if (code !== 0) return reject(new Error(`fork worker ${k} failed (${code}): ${err}`));
          resolve(JSON.parse(readFileSync(outFile, 'utf8')) as ForkStudyResult);
        });
      });
    }),
  );
  return rescore({ bases: parts[0]!.bases, forks: parts.flatMap((p) => p.forks) });
}

/** Setback pools by stage for one strategy. */
function pools(forks: ForkRecord[], strategy: string, S: number): number[][] {
  return Array.from({ length: S }, (_, s) => forks.filter((f) => f.strategy === strategy && f.stage === s).map((f) => f.setback));
}

/**
 * The swapped order's quality cost as a fraction of the iterations trained: the median of
 * setback / iteration over the evaluations of the second half of the base runs (one evaluation
 * alone swings with the noise of a flat curve).
 */
export function swapFraction(cost: ReturnType<typeof swapQualityCost>): number {
  if (!cost.length) return 0;
  const end = cost[cost.length - 1]!.iteration;
  const xs = cost.filter((c) => c.iteration >= end / 2).map((c) => c.setback / c.iteration).sort((a, b) => a - b);
  return xs[Math.floor(xs.length / 2)] ?? 0;
}

/** How stage-restore and cpsr are priced: the forks' checkpoint interval and cpsr's prediction time (units of T). */
export interface StageCheckpointPricing {
  every: number;
  predictCost: number;
}

/** From a fork study: its interval, and the mean prediction seconds of its cpsr forks over the base's iteration seconds. */
export function stageCheckpointPricing(c: ForkStudyConfig, fr: ForkStudyResult): StageCheckpointPricing | null {
  if (c.checkpointEvery === undefined || !fr.forks.some((f) => f.strategy === 'stage-restore' || f.strategy === 'cpsr')) return null;
  const T = fr.bases.find((b) => b.order === 'plain')!.iterationSeconds;
  const secs = fr.forks.filter((f) => f.strategy === 'cpsr').map((f) => f.computeSeconds ?? 0);
  const mean = secs.length ? secs.reduce((a, b) => a + b, 0) / secs.length : 0;
  return { every: c.checkpointEvery, predictCost: T > 0 ? mean / T : 0 };
}

/** Time (units of T) to the target for every strategy under one setting. */
export function priceSetting(
  o: { S: number; p: number; N: number; runs: number; seed: number; checkpointCost: number; redundantOverhead: number; wait: number; swapOverhead: number; swapFraction: number; intervals: number[]; stageCheckpoints?: StageCheckpointPricing | null },
  forks: ForkRecord[],
): { strategy: string; interval: number | null; r: PriceResult }[] {
  const lambda = swarmFailureRate(o.p, o.S);
  const base: Omit<PriceInput, 'iterationCost' | 'recoveryCost'> = { targetIterations: o.N, failuresPerIteration: lambda, nStages: o.S };
  const out: { strategy: string; interval: number | null; r: PriceResult }[] = [];
  const run = (strategy: string, x: PriceInput) => out.push({ strategy, interval: x.checkpoint?.every ?? null, r: price(x, o.runs, o.seed) });
  run('checkfree', { ...base, iterationCost: 1, recoveryCost: o.wait, setbacks: pools(forks, 'checkfree', o.S) });
  run('checkfree+', { ...base, targetIterations: Math.round(o.N * (1 + o.swapFraction)), iterationCost: 1 + o.swapOverhead, recoveryCost: o.wait, setbacks: pools(forks, 'checkfree+', o.S) });
  run('none', { ...base, iterationCost: 1, recoveryCost: o.wait, setbacks: pools(forks, 'none', o.S) });
  run('redundant', { ...base, iterationCost: 1 + o.redundantOverhead, recoveryCost: o.wait });
  const sc = o.stageCheckpoints;
  if (sc) {
    // Only the lost stage is restored from its checkpoint (its download costs what the baseline's
    // restore does) at the interval the forks measured; cpsr also waits for its prediction.
    const every = Math.min(sc.every, o.N);
    for (const s of ['stage-restore', 'cpsr'] as const) {
      if (!forks.some((f) => f.strategy === s)) continue;
      run(s, { ...base, iterationCost: 1, recoveryCost: o.wait + o.checkpointCost + (s === 'cpsr' ? sc.predictCost : 0), setbacks: pools(forks, s, o.S), stageCheckpoint: { every, cost: o.checkpointCost } });
      out[out.length - 1]!.interval = every;
    }
  }
  const intervals = sc && !o.intervals.includes(sc.every) ? [...o.intervals, sc.every] : o.intervals; // the baseline at the same interval
  for (const k of intervals) {
    const every = k === 0 ? youngDalyIterations(o.checkpointCost, lambda) : k;
    run(k === 0 ? 'checkpoint@yd' : `checkpoint@${k}`, { ...base, iterationCost: 1, recoveryCost: 0, checkpoint: { every: Math.min(every, o.N), cost: o.checkpointCost, restoreCost: o.wait + o.checkpointCost } });
  }
  return out;
}

const fmt = (x: number, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const csv = (rows: Record<string, unknown>[]) => {
  if (!rows.length) return '';
  const cols = Object.keys(rows[0]!);
  return [cols.join(','), ...rows.map((r) => cols.map((c) => (r[c] === null || r[c] === undefined ? '' : String(r[c]))).join(','))].join('\n') + '\n';
};

function stats(xs: number[]): { n: number; mean: number; sd: number; p50: number; p90: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  const mean = n ? s.reduce((a, b) => a + b, 0) / n : NaN;
  const sd = n > 1 ? Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return { n, mean, sd, p50: s[Math.floor(n / 2)] ?? NaN, p90: s[Math.min(n - 1, Math.floor(0.9 * n))] ?? NaN, max: s[n - 1] ?? NaN };
}

const COLORS: Record<string, string> = { ...STRATEGY_COLORS, exact: '#000000' };
const colorOf = (s: string) => COLORS[s] ?? (s.startsWith('checkpoint') ? STRATEGY_COLORS.checkpoint : '#ff7f0e');

/** Strip plot of setbacks: x = lost stage (offset per strategy), y = iterations lost. */
function setbackPlot(forks: ForkRecord[], S: number, title: string): string {
  const strategies = [...FORK_STRATEGIES];
  const series: Series[] = strategies.map((s, k) => ({
    name: s,
    color: colorOf(s),
    line: false,
    points: forks.filter((f) => f.strategy === s).map((f, i) => [f.stage + (k - 1) * 0.22 + ((i % 5) - 2) * 0.02, f.setback] as [number, number]),
  }));
  return lineChart({ title, subtitle: `${S} stages; x: lost stage (0 holds the embedding, ${S - 1} the head)`, xLabel: 'lost stage', yLabel: 'iterations lost', series });
}

/** Expected validation loss against wall clock (units of T): the base curve at the strategy's mean pace. */
function lossVsTimePlot(rate: (typeof PAPER_RATES)[number], rows: PricedRow[], plain: BaseRun, swap: BaseRun | undefined, N: number): string {
  const series: Series[] = rows.map((r) => {
    const curve = r.strategy === 'checkfree+' && swap ? swap.curve : plain.curve;
    const end = curve[curve.length - 1]!.iteration;
    // Progress runs at N / mean per unit of T; the base curve is stretched to the pricing's N.
    const pace = N / r.mean;
    return { name: r.strategy, color: colorOf(r.strategy), points: curve.map((p) => [((p.iteration / end) * N) / pace, p.loss] as [number, number]) };
  });
  return lineChart({
    title: `Expected validation loss vs wall clock at ${rate.hourly}%/h (p = ${rate.p} per stage per iteration)`,
    subtitle: 'base run curve at each strategy\'s mean pace (Monte Carlo); x in failure-free iteration times',
    xLabel: 'wall clock (iteration times)',
    yLabel: 'validation loss',
    series,
    yFitFromFraction: 0.1,
  });
}

function swarmPlot(runs: SwarmRunResult[], target: number): string {
  return lineChart({
    title: 'Real swarm under churn: validation loss vs wall clock',
    subtitle: `target ${target.toFixed(3)}; ticks: volunteer drops`,
    xLabel: 'seconds',
    yLabel: 'validation loss',
    series: runs.map((r) => ({
      name: r.strategy,
      color: colorOf(r.strategy),
      points: r.points.filter((p) => p.valLoss !== null).map((p) => [p.t, p.valLoss!] as [number, number]),
    })),
    yFitFromFraction: 0.1,
  });
}

/** Predicts a swarm run's time to target (seconds) from its measured quantities and the forks. */
export function predictSwarm(run: SwarmRunResult, v: ValidationOptions, forks: ForkRecord[], bases: BaseRun[], target: number, seed: number): PriceResult {
  const S = v.fork.stages;
  const T = run.iterationSeconds;
  const curve = (usesSwap({ recovery: run.strategy }) ? bases.find((b) => b.order === 'swap') : bases.find((b) => b.order === 'plain'))!.curve;
  const reach = firstReached(curve, target);
  // The target is reached at an evaluation: the first evaluation at or after the base crossing.
  const N = Math.max(1, Math.ceil((reach ?? curve[curve.length - 1]!.iteration) / v.run.evalEvery) * v.run.evalEvery);
  const warm = Math.min(N, v.run.warmupIterations);
  const waits = run.recoverySeconds.map((s) => Math.max(0, s - T));
  const wait = waits.length ? waits.reduce((a, b) => a + b, 0) / waits.length : v.run.replacementWaitMs / 1000;
  const lambda = swarmFailureRate(v.run.churnProbability, S);
  const x: PriceInput = { targetIterations: Math.max(1, N - warm), failuresPerIteration: lambda, nStages: S, iterationCost: 1, recoveryCost: wait / T, abandon: false };
  if (run.strategy === 'checkpoint') {
    // Measured as a difference of two noisy gaps: clamped at 0.
    const c = Math.max(0, run.checkpointSeconds ?? 0) / T;
    x.checkpoint = { every: v.run.checkpointEvery, cost: c, restoreCost: wait / T };
  } else if (run.strategy !== 'redundant') {
    x.setbacks = pools(forks, run.strategy, S);
  }
  const r = price(x, 2000, seed);
  const scale = (u: number) => (u + warm) * T;
  return { ...r, mean: scale(r.mean), p05: scale(r.p05), p50: scale(r.p50), p95: scale(r.p95), stderr: r.stderr * T };
}

export async function runStudy(o: StudyOptions): Promise<StudyResult> {
  const t0 = Date.now();
  const log = o.log;
  const dir = o.out ?? join(ROOT, 'results', `study-tmp-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  log(`fork study: ${o.fork.stages} stages x ${o.fork.layersPerStage} block(s), d ${o.fork.dModel}, forks at ${o.fork.forkPoints.join(', ')} (+${o.fork.horizon}), ${o.workers} worker(s)`);
  const fr = await forkInWorkers(o.fork, o.workers, join(dir, 'work'), log, o.reuseForks);
  const plain = fr.bases.find((b) => b.order === 'plain')!;
  const swap = fr.bases.find((b) => b.order === 'swap');
  const swapCost = swap ? swapQualityCost(plain, swap) : [];
  const sf = swapFraction(swapCost);
  log(`fork study done in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${fr.forks.length} forks`);

  const P = o.pricing;
  const S = o.fork.stages;
  const swapOverheads = P.hopRatios.map((h) => ({ hopRatio: h, overhead: swapOverhead(S, P.microbatches, h) }));
  const stageCheckpoints = stageCheckpointPricing(o.fork, fr);
  const priced: PricedRow[] = [];
  for (const rate of PAPER_RATES) {
    for (const c of P.checkpointCosts) for (const rho of P.redundantOverheads) for (const w of P.waits) for (const so of swapOverheads) {
      const central = c === P.central.checkpointCost && rho === P.central.redundantOverhead && w === P.central.wait;
      // The hop-ratio sweep is priced at the central setting only.
      if (!central && so.hopRatio !== P.central.hopRatio) continue;
      for (const x of priceSetting({ S, p: rate.p, N: P.targetIterations, runs: P.runs, seed: o.seed, checkpointCost: c, redundantOverhead: rho, wait: w, swapOverhead: so.overhead, swapFraction: sf, intervals: P.intervals, stageCheckpoints }, fr.forks)) {
        priced.push({ hourly: rate.hourly, p: rate.p, checkpointCost: c, redundantOverhead: rho, wait: w, hopRatio: so.hopRatio, strategy: x.strategy, interval: x.interval, mean: x.r.mean, p05: x.r.p05, p95: x.r.p95, failures: x.r.failures });
      }
    }
  }
  log(`priced ${priced.length} (setting, strategy) pairs`);

  let validation: StudyResult['validation'] = null;
  if (o.validation) {
    const v = o.validation;
    log(`validation: fork study of the swarm's model (${v.fork.stages} stages)`);
    const vf = await forkInWorkers(v.fork, o.workers, join(dir, 'work-validation'), log, o.reuseForks);
    const vplain = vf.bases.find((b) => b.order === 'plain')!;
    const target = vplain.curve.find((p) => p.iteration === v.targetIteration)?.loss;
    if (target === undefined) throw new Error(`the validation base has no evaluation at iteration ${v.targetIteration}`);
    const runs: SwarmRunResult[] = [];
    const rows: ValidationRow[] = [];
    for (const strategy of v.strategies) {
      for (let k = 0; k < v.runs; k++) {
        log(`validation: swarm run ${strategy} #${k + 1} (target ${target.toFixed(4)}, p ${v.run.churnProbability} per stage per iteration)`);
        const r = await runSwarm({
          ...v.run,
          churnSeed: v.run.churnSeed + k,
          strategy,
          targetLoss: target,
          stages: v.fork.stages,
          microbatches: v.fork.microbatches,
          batch: v.fork.batch,
          seqLen: v.fork.seqLen,
          lr: v.fork.lr,
          seed: v.fork.seed,
          evalBatches: v.fork.evalBatches,
          replicaEvery: v.fork.replicaEvery,
          log,
        });
        runs.push(r);
        if (o.out) writeFileSync(join(o.out, 'swarm-runs.json'), JSON.stringify(runs));
        const pr = predictSwarm(r, v, vf.forks, vf.bases, target, o.seed);
        const within = r.timeToTarget !== null && r.timeToTarget >= pr.p05 && r.timeToTarget <= pr.p95;
        const waits = r.recoverySeconds;
        rows.push({ strategy, failures: r.failures, measured: r.timeToTarget, predicted: pr.mean, p05: pr.p05, p95: pr.p95, within, iterationSeconds: r.iterationSeconds, recoverySeconds: waits.length ? waits.reduce((a, b) => a + b, 0) / waits.length : NaN });
        log(`  measured ${fmt(r.timeToTarget ?? NaN, 1)} s, predicted ${fmt(pr.mean, 1)} s [${fmt(pr.p05, 1)}, ${fmt(pr.p95, 1)}], ${r.failures} failures: ${within ? 'within' : 'OUTSIDE'} the band`);
      }
    }
    validation = { rows, runs, forks: vf.forks, target };
  }

  const summary = summarize(o, fr, swapCost, swapOverheads, priced, validation, (Date.now() - t0) / 1000);
  if (o.out) {
    writeFileSync(join(o.out, 'forks.csv'), csv(fr.forks as unknown as Record<string, unknown>[]));
    writeFileSync(join(o.out, 'bases.csv'), csv(fr.bases.flatMap((b) => b.curve.map((p) => ({ order: b.order, iteration: p.iteration, val_loss: p.loss })))));
    writeFileSync(join(o.out, 'pricing.csv'), csv(priced as unknown as Record<string, unknown>[]));
    writeFileSync(join(o.out, 'setbacks.svg'), setbackPlot(fr.forks, S, 'Iterations lost per recovery, by strategy and lost stage'));
    for (const rate of PAPER_RATES) {
      const rows = priced.filter((r) => r.hourly === rate.hourly && r.checkpointCost === P.central.checkpointCost && r.redundantOverhead === P.central.redundantOverhead && r.wait === P.central.wait && r.hopRatio === P.central.hopRatio);
      writeFileSync(join(o.out, `loss-vs-time-${rate.hourly}.svg`), lossVsTimePlot(rate, rows, plain, swap, P.targetIterations));
    }
    if (validation) {
      writeFileSync(join(o.out, 'validation.csv'), csv(validation.rows as unknown as Record<string, unknown>[]));
      writeFileSync(join(o.out, 'validation-forks.csv'), csv(validation.forks as unknown as Record<string, unknown>[]));
      writeFileSync(join(o.out, 'swarm.csv'), csv(validation.runs.flatMap((r) => r.points.map((p) => ({ strategy: r.strategy, ...p })))));
      writeFileSync(join(o.out, 'swarm-loss-vs-time.svg'), swarmPlot(validation.runs, validation.target));
      writeFileSync(join(o.out, 'swarm-runs.json'), JSON.stringify(validation.runs));
    }
    writeFileSync(join(o.out, 'summary.md'), summary);
  }
  return { forks: fr.forks, bases: fr.bases, swapCost, swapOverheads, priced, validation, summary };
}

function summarize(
  o: StudyOptions,
  fr: ForkStudyResult,
  swapCost: ReturnType<typeof swapQualityCost>,
  swapOverheads: { hopRatio: number; overhead: number }[],
  priced: PricedRow[],
  validation: StudyResult['validation'],
  seconds: number,
): string {
  const S = o.fork.stages;
  const P = o.pricing;
  const L: string[] = [];
  L.push('# Churn study', '');
  L.push(`Fork study: ${S} stages x ${o.fork.layersPerStage} block(s), d ${o.fork.dModel}, seq ${o.fork.seqLen}, ${o.fork.microbatches} microbatches x ${o.fork.batch}, lr ${o.fork.lr}; forks at ${o.fork.forkPoints.join(', ')}, ${o.fork.horizon} iterations each; edge ${o.fork.edge}. ${fmt(seconds, 0)} s in all.`, '');
  L.push('## Iterations lost per recovery (fork study)', '');
  L.push('| strategy | stage | n | mean | sd | median | p90 | max | method |', '|---|---|---|---|---|---|---|---|---|');
  for (const s of [...FORK_STRATEGIES, 'exact'] as const) {
    for (let st = 0; st < S; st++) {
      const fs = fr.forks.filter((f) => f.strategy === s && (s === 'exact' || f.stage === st));
      if (!fs.length) continue;
      const x = stats(fs.map((f) => f.setback));
      const methods = [...new Set(fs.map((f) => f.method + (f.fallback ? ' (fallback)' : '')))].join(', ');
      L.push(`| ${s} | ${s === 'exact' ? 'any' : st} | ${x.n} | ${fmt(x.mean, 1)} | ${fmt(x.sd, 1)} | ${fmt(x.p50, 1)} | ${fmt(x.p90, 1)} | ${fmt(x.max, 1)} | ${methods} |`);
      if (s === 'exact') break;
    }
  }
  L.push('');
  for (const s of FORK_STRATEGIES.filter((x) => fr.forks.some((f) => f.strategy === x))) {
    const x = stats(fr.forks.filter((f) => f.strategy === s).map((f) => f.setback));
    L.push(`- ${s}: ${x.n} forks, mean ${fmt(x.mean, 1)} iterations lost (sd ${fmt(x.sd, 1)}, max ${fmt(x.max, 1)})`);
  }
  const restores = fr.forks.filter((f) => f.strategy === 'stage-restore' || f.strategy === 'cpsr');
  if (restores.length) {
    const horizons = [...new Set(restores.map((f) => f.fork - (f.restoredFrom ?? f.fork)))].sort((a, b) => a - b);
    const cp = fr.forks.filter((f) => f.strategy === 'cpsr');
    L.push(`- stage-restore / cpsr: every stage checkpointed every ${o.fork.checkpointEvery} iterations; the lost stage restored from its last checkpoint, ${horizons.join(', ')} iteration(s) before the failure; cpsr predicted in ${cp.filter((f) => !f.fallback).length} of ${cp.length} forks (the rest: the plain restore); priced with a checkpoint every ${o.fork.checkpointEvery} iterations, against checkpoint@${o.fork.checkpointEvery}`);
  }
  const last = swapCost[swapCost.length - 1];
  if (last) {
    L.push(`- swapped order's own cost: after ${last.iteration} failure-free iterations the swapped run's validation loss ${fmt(last.swapLoss, 4)} vs plain ${fmt(last.plainLoss, 4)}: ${fmt(last.setback, 1)} iterations behind; over the second half of the runs the median is ${fmt(100 * swapFraction(swapCost), 1)}% more iterations to the same loss (priced as such)`);
  }
  const hp = hopsPerMicrobatch(S);
  L.push(`- swapped order's iteration time (${S} stages, ${P.microbatches} microbatches, 1F1B with ${S} in flight): ${hp.swapped} hops per swapped microbatch instead of ${hp.plain}; overhead ${swapOverheads.map((x) => `${fmt(100 * x.overhead, 1)}% at hop/compute ${x.hopRatio}`).join(', ')}`);
  L.push('');
  L.push('## Time to target in the paper\'s regime (Monte Carlo, units of the failure-free iteration time)', '');
  const c = P.central;
  L.push(`Central setting: checkpoint cost ${c.checkpointCost} T, redundant overhead ${100 * c.redundantOverhead}%, replacement wait ${c.wait} T, hop/compute ${c.hopRatio}; ${P.targetIterations} iterations to the target; ${P.runs} Monte Carlo runs per cell. Cells: mean time / failure-free time.`, '');
  const central = priced.filter((r) => r.checkpointCost === c.checkpointCost && r.redundantOverhead === c.redundantOverhead && r.wait === c.wait && r.hopRatio === c.hopRatio);
  const strategies = [...new Set(central.map((r) => r.strategy))];
  L.push(`| rate | ${strategies.join(' | ')} |`, `|---|${strategies.map(() => '---').join('|')}|`);
  for (const rate of PAPER_RATES) {
    const rs = central.filter((r) => r.hourly === rate.hourly);
    L.push(`| ${rate.hourly}%/h (p ${rate.p}) | ${strategies.map((s) => fmt((rs.find((r) => r.strategy === s)?.mean ?? NaN) / P.targetIterations, 3)).join(' | ')} |`);
  }
  L.push('');
  L.push('Speed-up of the best CheckFree variant over the best checkpoint interval and over redundancy (time ratio - 1), against the paper:', '');
  L.push('| rate | best checkfree | vs best checkpoint | vs redundant | paper |', '|---|---|---|---|---|');
  for (const rate of PAPER_RATES) {
    const rs = central.filter((r) => r.hourly === rate.hourly);
    const cf = rs.filter((r) => r.strategy === 'checkfree' || r.strategy === 'checkfree+').sort((a, b) => a.mean - b.mean)[0]!;
    const ck = rs.filter((r) => r.strategy.startsWith('checkpoint')).sort((a, b) => a.mean - b.mean)[0]!;
    const rd = rs.find((r) => r.strategy === 'redundant')!;
    const paper = rate.hourly <= 10 ? 'over 12% faster than both' : rate.hourly === 33 ? 'up to 1.6x faster than checkpointing' : '-';
    L.push(`| ${rate.hourly}%/h | ${cf.strategy} | ${fmt(100 * (ck.mean / cf.mean - 1), 1)}% (${ck.strategy}, every ${ck.interval}) | ${fmt(100 * (rd.mean / cf.mean - 1), 1)}% | ${paper} |`);
  }
  L.push('');
  L.push('## Where each strategy wins (winner, and its margin over the runner-up)', '');
  const hopC = c.hopRatio;
  L.push(`Hop/compute ${hopC}. Rows: checkpoint cost / redundant overhead / replacement wait (units of T).`, '');
  L.push(`| setting | ${PAPER_RATES.map((r) => `${r.hourly}%/h`).join(' | ')} |`, `|---|${PAPER_RATES.map(() => '---').join('|')}|`);
  for (const ck of P.checkpointCosts) for (const rho of P.redundantOverheads) for (const w of P.waits) {
    const cells = PAPER_RATES.map((rate) => {
      const rs = priced.filter((r) => r.hourly === rate.hourly && r.checkpointCost === ck && r.redundantOverhead === rho && r.wait === w && r.hopRatio === hopC).sort((a, b) => a.mean - b.mean);
      if (rs.length < 2) return '-';
      return `${rs[0]!.strategy} (+${fmt(100 * (rs[1]!.mean / rs[0]!.mean - 1), 1)}% over ${rs[1]!.strategy})`;
    });
    L.push(`| ${ck} / ${100 * rho}% / ${w} | ${cells.join(' | ')} |`);
  }
  L.push('');
  if (validation) {
    L.push('## Validation on the real swarm', '');
    L.push(`Target validation loss ${fmt(validation.target, 4)} (the failure-free run's at iteration ${o.validation!.targetIteration}); churn p ${o.validation!.run.churnProbability} per stage per iteration; replacement after ${o.validation!.run.replacementWaitMs} ms.`, '');
    L.push('| strategy | failures | iteration s | recovery s | measured s | predicted s | 5-95% | within |', '|---|---|---|---|---|---|---|---|');
    for (const r of validation.rows) {
      L.push(`| ${r.strategy} | ${r.failures} | ${fmt(r.iterationSeconds, 2)} | ${fmt(r.recoverySeconds, 2)} | ${fmt(r.measured ?? NaN, 1)} | ${fmt(r.predicted, 1)} | ${fmt(r.p05, 1)}-${fmt(r.p95, 1)} | ${r.within ? 'yes' : 'no'} |`);
    }
    L.push('', `${validation.rows.filter((r) => r.within).length} of ${validation.rows.length} measured times lie within the predicted 5-95% band.`);
  }
  return L.join('\n') + '\n';
}
