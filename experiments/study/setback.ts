/**
 * The quality of a recovery as *iterations lost* (docs/experiments.md, "Churn study"): the
 * horizontal distance between a recovered run's loss curve and the failure-free base run's.
 *
 * A recovered run forked from the base at iteration f and trained to iteration t = f + H has
 * validation loss L; the base has B there. Both are placed on the base's curve: the iteration at
 * which the base first reached that loss (linearly interpolated between the base's evaluations,
 * on its running minimum, so a noisy curve has one answer): r(L) and r(B). The setback is
 * r(B) - r(L) iterations. Placing B on the curve too, rather than using t itself, keeps the
 * evaluation noise out: a validation loss a little above an earlier, lucky evaluation of the base
 * would otherwise count as iterations lost, even for the base itself. A recovered run at or below
 * B has lost nothing (setback 0; the signed gap is kept as `gap`).
 */

/** One evaluation of a run: validation loss after `iteration` completed iterations. */
export interface CurvePoint {
  iteration: number;
  loss: number;
}

export interface Setback {
  /** Iterations lost, >= 0 (0: the recovered run is as good as the base or better). */
  iterations: number;
  /** t - r without the clamp at 0 (negative: the recovered run is ahead by that much). */
  gap: number;
  /** True when the recovered loss is above the base's first evaluation (lost everything up to t). */
  capped: boolean;
}

function checkCurve(base: readonly CurvePoint[]): void {
  if (base.length === 0) throw new RangeError('the base curve has no points');
  for (let i = 0; i < base.length; i++) {
    const p = base[i]!;
    if (!Number.isFinite(p.loss) || !Number.isFinite(p.iteration)) throw new RangeError(`base point ${i} is not finite`);
    if (i > 0 && !(p.iteration > base[i - 1]!.iteration)) throw new RangeError('base iterations must increase');
  }
}

/** The first (interpolated) iteration at which the base's running minimum is <= `loss`; null if never. */
export function firstReached(base: readonly CurvePoint[], loss: number): number | null {
  checkCurve(base);
  let best = base[0]!.loss;
  if (best <= loss) return base[0]!.iteration;
  for (let i = 1; i < base.length; i++) {
    const p = base[i]!;
    if (p.loss <= loss) {
      const q = base[i - 1]!;
      // Between q (running min `best` > loss) and p (<= loss): interpolate on the segment best -> p.loss.
      const frac = (best - loss) / (best - p.loss);
      return q.iteration + frac * (p.iteration - q.iteration);
    }
    best = Math.min(best, p.loss);
  }
  return null;
}

/** The base's validation loss at iteration `at` (interpolated between evaluations). */
export function lossAt(base: readonly CurvePoint[], at: number): number {
  checkCurve(base);
  if (at <= base[0]!.iteration) return base[0]!.loss;
  for (let i = 1; i < base.length; i++) {
    const p = base[i]!;
    if (p.iteration >= at) {
      const q = base[i - 1]!;
      return q.loss + ((at - q.iteration) / (p.iteration - q.iteration)) * (p.loss - q.loss);
    }
  }
  throw new RangeError(`the base curve ends at iteration ${base[base.length - 1]!.iteration}, before ${at}`);
}

/** Iterations lost by a run with validation loss `loss` after `at` iterations, against `base`. */
export function iterationsLost(base: readonly CurvePoint[], at: number, loss: number): Setback {
  const b = lossAt(base, at);
  const rb = firstReached(base, b)!; // the base's own loss is reached by the base, at or before `at`
  if (!Number.isFinite(loss)) return { iterations: rb, gap: rb, capped: true };
  const r = firstReached(base, loss);
  if (r === null) {
    // Below everything the base reached: ahead by at least what is left of the base curve.
    const last = base[base.length - 1]!.iteration;
    return { iterations: 0, gap: Math.min(0, rb - last), capped: false };
  }
  const capped = loss > base[0]!.loss;
  const gap = rb - r;
  return { iterations: Math.max(0, gap), gap, capped };
}
