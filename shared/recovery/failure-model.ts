/**
 * The failure model's arithmetic, in one place for the coordinator's churn, its checkpoint
 * interval and the experiments (docs/research.md, "Failure model" and "Checkpoint interval").
 */

/** Seconds per hour. */
const HOUR = 3600;

/**
 * Per-iteration, per-stage failure probability for an hourly rate `hourly` (a fraction in [0, 1])
 * when one iteration takes `iterationSeconds`: p = 1 - (1 - h)^(T / 3600).
 */
export function perIterationProbability(hourly: number, iterationSeconds: number): number {
  if (!(hourly >= 0 && hourly <= 1)) throw new RangeError(`hourly failure rate must be in [0, 1], got ${hourly}`);
  if (!(iterationSeconds > 0) || !Number.isFinite(iterationSeconds)) {
    throw new RangeError(`iteration seconds must be a positive number, got ${iterationSeconds}`);
  }
  if (hourly === 0) return 0;
  if (hourly === 1) return 1;
  // 1 - (1-h)^x, computed without cancellation for tiny probabilities.
  return -Math.expm1((iterationSeconds / HOUR) * Math.log1p(-hourly));
}

/** The hourly rate that gives per-iteration probability `p` at `iterationSeconds` (inverse of the above). */
export function hourlyRateOf(p: number, iterationSeconds: number): number {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`probability must be in [0, 1], got ${p}`);
  if (p === 0 || p === 1) return p;
  return -Math.expm1((HOUR / iterationSeconds) * Math.log1p(-p));
}

/**
 * Young/Daly's checkpoint interval in seconds: sqrt(2 C / lambda) for a checkpoint that costs
 * `checkpointSeconds` and `failuresPerSecond` failures per second (of the whole swarm).
 * Infinity when no failure is expected.
 */
export function youngDalyIntervalSeconds(checkpointSeconds: number, failuresPerSecond: number): number {
  if (!(checkpointSeconds >= 0)) throw new RangeError(`checkpoint seconds must be >= 0, got ${checkpointSeconds}`);
  if (!(failuresPerSecond > 0)) return Infinity;
  return Math.sqrt((2 * checkpointSeconds) / failuresPerSecond);
}
