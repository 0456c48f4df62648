/**
 * The recovery cost of bench/cpsr-swarm.ts, as pure functions over measured numbers.
 *
 * A swarm evaluates the validation loss after each completed iteration: `loss(i)` is the loss
 * with i iterations completed. Paused at F (loss(F) measured before the failure), a stage is lost
 * and rebuilt; the run resumes at `resumeAt` (F, or the checkpoint a rollback went back to).
 *
 * Back on the curve: the first iteration i >= F evaluated after the failure (i >= F + 1 without a
 * rollback, whose first evaluation comes one iteration after the rebuild; i >= F with one, whose
 * recomputed F is evaluated) with loss(i) <= ref(i) * (1 + tol). The cost, in iterations, is the
 * iterations executed after the failure until then: i - resumeAt. Not back within `after`
 * iterations past F: after + 1 + (F - resumeAt), and iteration null.
 */

export interface BackOnCurveInput {
  failure: number;
  resumeAt: number;
  after: number;
  tol: number;
  /** Validation loss after i completed iterations in the run with the failure (NaN: not evaluated). */
  loss: (i: number) => number;
  /** The same in the failure-free reference run. */
  ref: (i: number) => number;
}

export function backOnCurve(o: BackOnCurveInput): { iteration: number | null; cost: number } {
  if (!(o.resumeAt <= o.failure) || !(o.tol >= 0) || !(o.after >= 1)) throw new RangeError('need resumeAt <= failure, tol >= 0, after >= 1');
  const first = o.resumeAt < o.failure ? o.failure : o.failure + 1;
  for (let i = first; i <= o.failure + o.after; i++) {
    const l = o.loss(i);
    const r = o.ref(i);
    if (Number.isFinite(l) && Number.isFinite(r) && l <= r * (1 + o.tol)) return { iteration: i, cost: i - o.resumeAt };
  }
  return { iteration: null, cost: o.after + 1 + (o.failure - o.resumeAt) };
}

/**
 * The evaluation-to-evaluation noise of a loss curve: twice the RMS of (loss(i) - m(i)) / m(i) over
 * `at`, m the centred 5-point moving average (points without all 5 neighbours evaluated are skipped).
 */
export function curveTolerance(curve: readonly number[], at: readonly number[]): number {
  const dev: number[] = [];
  for (const i of at) {
    const win = [i - 2, i - 1, i, i + 1, i + 2].map((k) => curve[k]);
    if (win.some((x) => x === undefined || !Number.isFinite(x))) continue;
    const m = (win as number[]).reduce((a, b) => a + b, 0) / 5;
    dev.push((curve[i]! - m) / m);
  }
  if (!dev.length) throw new RangeError('no point of the curve has 5 evaluated neighbours');
  return 2 * Math.sqrt(dev.reduce((a, d) => a + d * d, 0) / dev.length);
}

/** ||a - b|| / ||b||. */
export function relativeDistance(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new RangeError(`lengths differ: ${a.length} vs ${b.length}`);
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    n += b[i]! ** 2;
  }
  return Math.sqrt(d / n);
}

/**
 * The finer measure (the loss-based cost has a floor of one iteration without a rollback): how
 * far behind the failure-free curve the run is after the failure, in iterations of that curve.
 * The reference's local descent per iteration is the least-squares slope of ref over `span`;
 * the lag at i is (loss(i) - ref(i)) / -slope, averaged over F + 1 .. F + after (the iterations a
 * no-rollback run and a rollback that has caught up both evaluate). Negative: ahead of the curve
 * (noise). NaN where the curve does not fall over the span or an evaluation is missing.
 */
export function meanLag(o: { failure: number; after: number; span: readonly number[]; loss: (i: number) => number; ref: (i: number) => number }): { lag: number; slope: number } {
  const pts = o.span.map((i) => [i, o.ref(i)] as const).filter(([, y]) => Number.isFinite(y));
  if (pts.length < 2) return { lag: NaN, slope: NaN };
  const mx = pts.reduce((a, [x]) => a + x, 0) / pts.length;
  const my = pts.reduce((a, [, y]) => a + y, 0) / pts.length;
  const sxy = pts.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  const sxx = pts.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  const slope = sxy / sxx;
  if (!(slope < 0)) return { lag: NaN, slope };
  let sum = 0;
  for (let i = o.failure + 1; i <= o.failure + o.after; i++) {
    const g = o.loss(i) - o.ref(i);
    if (!Number.isFinite(g)) return { lag: NaN, slope };
    sum += g / -slope;
  }
  return { lag: sum / o.after, slope };
}

/**
 * Where bench:cpsr-swarm injects its failures: for each fraction p of the budget, the checkpoint
 * nearest to p x budget - horizon (checkpoints are taken after iterations 1, 1 + K, 1 + 2K, ...),
 * plus `horizon` iterations, so every failure is `horizon` iterations past its last checkpoint.
 */
export function failurePoints(budget: number, every: number, horizon: number, fractions: readonly number[] = [0.25, 0.5, 0.75]): { failure: number; checkpoint: number; checkpoints: number }[] {
  if (!(Number.isInteger(every) && every >= 1 && Number.isInteger(horizon) && horizon >= 0 && horizon < every)) throw new RangeError('need an integer interval >= 1 and 0 <= horizon < interval');
  return fractions.map((p) => {
    const n = Math.max(0, Math.round((p * budget - horizon - 1) / every));
    const checkpoint = 1 + n * every;
    return { failure: checkpoint + horizon, checkpoint, checkpoints: n + 1 };
  });
}
