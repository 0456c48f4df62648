/**
 * The Monte Carlo wall-clock pricer of the churn study (docs/experiments.md, "Churn study").
 *
 * Everything is in units of the failure-free iteration time T (dimensionless ratios), so one
 * pricing covers every model size whose ratios match. A run must make `targetIterations` of
 * progress (the failure-free run reaches the target loss there). Failures of the whole swarm
 * arrive as a Poisson process of rate `failuresPerIteration` = S * -ln(1 - p) for S stages that
 * each fail with probability p per iteration (docs/research.md, "Failure model"); each failure
 * strikes one stage drawn uniformly.
 *
 *   rebuild strategies (checkfree, checkfree+, none, redundant): an iteration costs
 *     `iterationCost` (1 + the strategy's overhead: swapped hops, redundant copies); a failure
 *     abandons the iteration in flight, costs `recoveryCost` (replacement wait + transfer), and
 *     sets progress back by a setback drawn from the measured ones for the failed stage;
 *   checkpoint: after every `every` iterations a checkpoint costs `cost`; a failure rolls progress
 *     back to the last checkpoint and costs `restoreCost` (replacement wait + reading it back).
 *   stage-restore, cpsr: a rebuild strategy (the measured setbacks of restoring only the lost
 *     stage from its checkpoint) that also pays `stageCheckpoint.cost` after every
 *     `stageCheckpoint.every` completed iterations (the checkpoint is part of the iteration it
 *     follows: a failure during it abandons both); `recoveryCost` holds the wait, the checkpoint
 *     download and, for cpsr, the prediction.
 *
 * Failures during a recovery wait are not drawn (the clock restarts after it). With setbacks 0,
 * no recovery cost and checkpointing, the expected time is the classic closed form
 * (checkpointClosedForm), which the tests check the simulation against.
 */
import { mulberry32 } from '../../shared/model/rng.js';

export interface CheckpointPolicy {
  /** Iterations between checkpoints. */
  every: number;
  /** Cost of one checkpoint (units of T). */
  cost: number;
  /** Cost of a rollback beyond the lost work: replacement wait + restore (units of T). */
  restoreCost: number;
}

export interface PriceInput {
  targetIterations: number;
  /** Poisson rate of failures of the whole swarm, per unit of T. */
  failuresPerIteration: number;
  nStages: number;
  /** Seconds-free cost of one iteration (1 = the failure-free plain iteration). */
  iterationCost: number;
  /** Rebuild strategies: the cost of one recovery (units of T). */
  recoveryCost: number;
  /** Rebuild strategies: measured setbacks (iterations) per failed stage; empty or absent = 0. */
  setbacks?: readonly (readonly number[])[];
  /** Checkpointing instead of a rebuild. */
  checkpoint?: CheckpointPolicy;
  /**
   * Rebuild strategies: whether a failure abandons the iteration in flight (default true: a tab
   * fails at any moment). false: failures strike between iterations, as the operator's churn does.
   */
  abandon?: boolean;
  /** Rebuild strategies that checkpoint (stage-restore, cpsr): a checkpoint of `cost` after every `every` completed iterations. */
  stageCheckpoint?: { every: number; cost: number };
}

export interface PriceResult {
  mean: number;
  /** Standard error of the mean. */
  stderr: number;
  p05: number;
  p50: number;
  p95: number;
  /** Mean failures per run. */
  failures: number;
  runs: number;
}

/** Swarm failure rate per iteration for S stages failing with probability p per iteration each. */
export function swarmFailureRate(perStageProbability: number, nStages: number): number {
  if (!(perStageProbability >= 0 && perStageProbability < 1)) throw new RangeError(`p must be in [0, 1), got ${perStageProbability}`);
  return -nStages * Math.log1p(-perStageProbability);
}

/** Young/Daly's interval in iterations: sqrt(2 c / lambda) for checkpoint cost c (units of T). */
export function youngDalyIterations(cost: number, failuresPerIteration: number): number {
  if (!(failuresPerIteration > 0)) return Infinity;
  return Math.max(1, Math.round(Math.sqrt((2 * cost) / failuresPerIteration)));
}

/**
 * Expected time of `m` checkpointed segments of `every` iterations at cost 1 each, the last without
 * a checkpoint, failure rate `lambda`, nothing lost but the segment's work: each segment of length
 * L is retried until it survives, E = (e^(lambda L) - 1) / lambda.
 */
export function checkpointClosedForm(targetIterations: number, every: number, cost: number, lambda: number): number {
  const seg = (L: number) => (lambda > 0 ? Math.expm1(lambda * L) / lambda : L);
  const full = Math.floor(targetIterations / every);
  const rest = targetIterations - full * every;
  if (rest === 0) return (full - 1) * seg(every + cost) + seg(every);
  return full * seg(every + cost) + seg(rest);
}

function checkInput(o: PriceInput): void {
  if (!(Number.isInteger(o.targetIterations) && o.targetIterations >= 1)) throw new RangeError(`target iterations must be an integer >= 1, got ${o.targetIterations}`);
  if (!(o.failuresPerIteration >= 0 && Number.isFinite(o.failuresPerIteration))) throw new RangeError('failure rate must be finite and >= 0');
  if (!(o.iterationCost > 0)) throw new RangeError('iteration cost must be > 0');
  if (!(o.recoveryCost >= 0)) throw new RangeError('recovery cost must be >= 0');
  if (o.checkpoint) {
    const c = o.checkpoint;
    if (!(Number.isInteger(c.every) && c.every >= 1) || !(c.cost >= 0) || !(c.restoreCost >= 0)) throw new RangeError('bad checkpoint policy');
  }
  if (o.stageCheckpoint) {
    const c = o.stageCheckpoint;
    if (o.checkpoint) throw new RangeError('a run checkpoints either as the checkpoint baseline or as a stage restore, not both');
    if (!(Number.isInteger(c.every) && c.every >= 1) || !(c.cost >= 0)) throw new RangeError('bad stage checkpoint policy');
  }
}

/** One run's wall-clock time (units of T) and failure count, drawn with `rand`. */
export function simulateRun(o: PriceInput, rand: () => number): { time: number; failures: number } {
  const exp = () => (o.failuresPerIteration > 0 ? -Math.log(1 - rand()) / o.failuresPerIteration : Infinity);
  let t = 0;
  let progress = 0;
  let failures = 0;
  let nextFailure = exp();
  const N = o.targetIterations;
  if (o.checkpoint) {
    const { every, cost, restoreCost } = o.checkpoint;
    while (progress < N) {
      const k = Math.min(every, N - progress);
      const len = k * o.iterationCost + (progress + k < N ? cost : 0);
      if (nextFailure < t + len) {
        failures++;
        t = nextFailure + restoreCost;
        nextFailure = t + exp();
      } else {
        t += len;
        progress += k;
      }
    }
    return { time: t, failures };
  }
  const S = o.nStages;
  let completed = 0;
  while (progress < N) {
    const sc = o.stageCheckpoint;
    const end = t + o.iterationCost + (sc && (completed + 1) % sc.every === 0 && progress + 1 < N ? sc.cost : 0);
    if (nextFailure < end) {
      failures++;
      const stage = Math.min(S - 1, Math.floor(rand() * S));
      const pool = o.setbacks?.[stage];
      const lost = pool && pool.length ? pool[Math.min(pool.length - 1, Math.floor(rand() * pool.length))]! : 0;
      if (o.abandon === false) {
        t = end;
        progress++;
        completed++;
      } else {
        t = nextFailure;
      }
      progress = Math.max(0, progress - lost);
      t += o.recoveryCost;
      nextFailure = t + exp();
    } else {
      t = end;
      progress++;
      completed++;
    }
  }
  return { time: t, failures };
}

/** `runs` independent runs from `seed`: mean time to the target and its spread. */
export function price(o: PriceInput, runs: number, seed: number): PriceResult {
  checkInput(o);
  if (!(Number.isInteger(runs) && runs >= 2)) throw new RangeError(`runs must be an integer >= 2, got ${runs}`);
  const rand = mulberry32(seed);
  const times: number[] = [];
  let failures = 0;
  for (let r = 0; r < runs; r++) {
    const x = simulateRun(o, rand);
    times.push(x.time);
    failures += x.failures;
  }
  times.sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / runs;
  const sd = Math.sqrt(times.reduce((a, b) => a + (b - mean) ** 2, 0) / (runs - 1));
  const q = (f: number) => times[Math.min(runs - 1, Math.floor(f * runs))]!;
  return { mean, stderr: sd / Math.sqrt(runs), p05: q(0.05), p50: q(0.5), p95: q(0.95), failures: failures / runs, runs };
}
