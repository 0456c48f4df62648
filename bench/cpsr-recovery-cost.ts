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
