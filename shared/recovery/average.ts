/**
 * CheckFree's weighted average of two neighbouring stages (docs/research.md, "CheckFree").
 *
 * When intermediate stage i is lost, its blocks are rebuilt tensor by tensor from its neighbours:
 *
 *   W_i = (a * W_next + b * W_prev) / (a + b),   a = g_next + 1e-4,   b = g_prev + 1e-4
 *
 * where W_prev / W_next are stage i-1 / i+1 and g is each neighbour's last gradient norm. Which
 * norm is selectable (`AverageWeighting`); the reference code uses the post-clip norm, so that is
 * the default. Block parameter names are stage-local (shared/model/params.ts), so every block
 * stage has the same names and shapes and the average is a plain element-wise one.
 *
 * Pure JavaScript on Float32Arrays (no tfjs): the coordinator runs this on weights fetched from
 * tabs. Sums are formed in float64 and rounded once to float32.
 */
import type { GradNorms, NamedWeights } from '../model/stage.js';
import { isBlockParam } from '../model/params.js';
import { RecoveryError } from './errors.js';

/**
 * How the two neighbours are weighed:
 * - `post-clip`: the gradient norm after clipping to 1.0 (reference default; two neighbours whose
 *   raw norms both exceed 1 then weigh the same);
 * - `pre-clip`: the raw gradient norm;
 * - `squared`: the post-clip norm squared (the paper's summary);
 * - `uniform`: a plain mean.
 */
export const AVERAGE_WEIGHTINGS = ['post-clip', 'pre-clip', 'squared', 'uniform'] as const;
export type AverageWeighting = (typeof AVERAGE_WEIGHTINGS)[number];

/** Added to each neighbour's norm so a zero gradient still gets a (tiny) share. */
export const NORM_EPS = 1e-4;

export interface AverageResult {
  /** The averaged block tensors (block parameters only, fresh arrays). */
  weights: NamedWeights;
  /** Weight of the next stage (i+1). */
  a: number;
  /** Weight of the previous stage (i-1). */
  b: number;
  /** The weighting actually applied: `uniform` when a norm was missing or not a finite number >= 0. */
  weighting: AverageWeighting;
}

/** The scalar a neighbour contributes under `weighting`, or null when its norms are unusable. */
function normOf(n: GradNorms | null, weighting: AverageWeighting): number | null {
  if (!n) return null;
  const g =
    weighting === 'pre-clip' ? n.preClipNorm : weighting === 'squared' ? n.postClipNorm * n.postClipNorm : n.postClipNorm;
  return Number.isFinite(g) && g >= 0 ? g : null;
}

/**
 * The averaging weights (a for next, b for prev) for the given norms. Falls back to uniform
 * (a = b = 1) when either side has no usable norm, e.g. a stage that has not stepped yet.
 */
export function averageWeights(
  normPrev: GradNorms | null,
  normNext: GradNorms | null,
  weighting: AverageWeighting = 'post-clip',
): { a: number; b: number; weighting: AverageWeighting } {
  if (!AVERAGE_WEIGHTINGS.includes(weighting)) {
    throw new RecoveryError(`unknown averaging weighting "${String(weighting)}"; choose one of: ${AVERAGE_WEIGHTINGS.join(', ')}`);
  }
  if (weighting !== 'uniform') {
    const gPrev = normOf(normPrev, weighting);
    const gNext = normOf(normNext, weighting);
    if (gPrev !== null && gNext !== null) return { a: gNext + NORM_EPS, b: gPrev + NORM_EPS, weighting };
  }
  return { a: 1, b: 1, weighting: 'uniform' };
}

/** Sorted names of the block parameters in `w`. */
export function blockNames(w: NamedWeights): string[] {
  return Object.keys(w).filter(isBlockParam).sort();
}

/**
 * Rebuilds a lost intermediate stage's blocks from its neighbours `prev` (stage i-1) and `next`
 * (stage i+1). Non-block tensors (a neighbour's embedding or head) are ignored. Throws a
 * RecoveryError, changing nothing, when the two sides' block names differ, when a tensor's
 * lengths differ, or when there are no block tensors at all.
 */
export function checkfreeAverage(
  prev: NamedWeights,
  next: NamedWeights,
  normPrev: GradNorms | null,
  normNext: GradNorms | null,
  weighting: AverageWeighting = 'post-clip',
): AverageResult {
  const names = blockNames(prev);
  const nextNames = blockNames(next);
  const onlyPrev = names.filter((n) => !(n in next));
  const onlyNext = nextNames.filter((n) => !(n in prev));
  if (onlyPrev.length || onlyNext.length) {
    const list = (xs: string[]) => (xs.length ? xs.slice(0, 3).join(', ') + (xs.length > 3 ? ', ...' : '') : 'none');
    throw new RecoveryError(
      `cannot average stages with different block parameters: only in previous stage: ${list(onlyPrev)}; ` +
        `only in next stage: ${list(onlyNext)}`,
    );
  }
  if (names.length === 0) throw new RecoveryError('cannot average: the neighbours have no block parameters');
  for (const n of names) {
    if (prev[n]!.length !== next[n]!.length) {
      throw new RecoveryError(
        `cannot average "${n}": previous stage has ${prev[n]!.length} values, next stage has ${next[n]!.length}`,
      );
    }
  }
  const w = averageWeights(normPrev, normNext, weighting);
  const wa = w.a / (w.a + w.b);
  const wb = w.b / (w.a + w.b);
  const weights: NamedWeights = {};
  for (const n of names) {
    const p = prev[n]!;
    const q = next[n]!;
    const out = new Float32Array(p.length);
    for (let k = 0; k < p.length; k++) out[k] = wa * q[k]! + wb * p[k]!;
    weights[n] = out;
  }
  return { weights, ...w };
}
