/**
 * CheckFree's weighted average of two neighbouring stages (docs/research.md, "CheckFree").
 *
 * When intermediate stage i is lost, its blocks are rebuilt tensor by tensor from its neighbours:
 *
 *   W_i = (a * W_next + b * W_prev) / (a + b),   a = g_next + 1e-4,   b = g_prev + 1e-4
 *
 * where W_prev / W_next are stage i-1 / i+1 and g is each neighbour's last gradient norm over its
 * *block* parameters (`GradNorms.blockNorm`): in the reference, block stages hold only blocks, so
 * the weighting compares block gradients; here stage 0 also owns the embedding and the last stage
 * the head, whose gradients would otherwise dominate the neighbour next to them. Which norm is
 * selectable (`AverageWeighting`); the reference code uses the post-clip norm, so that is the
 * default. A neighbour without a block norm (an ack from an older tab) is weighed by its
 * whole-stage norm, and the result says so (`wholeStage`). Block parameter names are stage-local (shared/model/params.ts), so every block
 * stage has the same names and shapes and the average is a plain element-wise one.
 *
 * Pure JavaScript on Float32Arrays (no tfjs): the coordinator runs this on weights fetched from
 * tabs. Sums are formed in float64 and rounded once to float32.
 */
import type { GradNorms, NamedWeights } from '../model/stage.js';
import { isBlockParam } from '../model/params.js';
import { RecoveryError } from './errors.js';

/**
 * How the two neighbours are weighed (always by the block part of their gradient):
 * - `post-clip`: the gradient norm after clipping to 1.0 (reference default; a neighbour whose
 *   raw norm exceeds 1 counts with at most 1);
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
  /** True when a neighbour had no block norm and its whole-stage norm was used instead. */
  wholeStage: boolean;
}

/**
 * A neighbour's block-gradient norm after clipping (`blockNorm`), or its whole-stage post-clip
 * norm when it reported none; null when neither is a finite number >= 0.
 */
function postClipBlockNorm(n: GradNorms): { g: number; wholeStage: boolean } | null {
  const ok = (x: number | undefined): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0;
  if (ok(n.blockNorm)) return { g: n.blockNorm, wholeStage: false };
  return ok(n.postClipNorm) ? { g: n.postClipNorm, wholeStage: true } : null;
}

/** The scalar a neighbour contributes under `weighting`, or null when its norms are unusable. */
function normOf(n: GradNorms | null, weighting: AverageWeighting): { g: number; wholeStage: boolean } | null {
  if (!n) return null;
  const post = postClipBlockNorm(n);
  if (!post) return null;
  let g = post.g;
  if (weighting === 'squared') g = post.g * post.g;
  if (weighting === 'pre-clip') {
    // Undo the clip coefficient (post/pre, the same for the block part and the whole stage).
    if (!(Number.isFinite(n.preClipNorm) && n.preClipNorm >= 0)) return null;
    g = n.postClipNorm > 0 ? (post.g * n.preClipNorm) / n.postClipNorm : post.g;
  }
  return Number.isFinite(g) && g >= 0 ? { g, wholeStage: post.wholeStage } : null;
}

/**
 * The averaging weights (a for next, b for prev) for the given norms. Falls back to uniform
 * (a = b = 1) when either side has no usable norm, e.g. a stage that has not stepped yet.
 */
export function averageWeights(
  normPrev: GradNorms | null,
  normNext: GradNorms | null,
  weighting: AverageWeighting = 'post-clip',
): { a: number; b: number; weighting: AverageWeighting; wholeStage: boolean } {
  if (!AVERAGE_WEIGHTINGS.includes(weighting)) {
    throw new RecoveryError(`unknown averaging weighting "${String(weighting)}"; choose one of: ${AVERAGE_WEIGHTINGS.join(', ')}`);
  }
  if (weighting !== 'uniform') {
    const gPrev = normOf(normPrev, weighting);
    const gNext = normOf(normNext, weighting);
    if (gPrev !== null && gNext !== null) {
      return { a: gNext.g + NORM_EPS, b: gPrev.g + NORM_EPS, weighting, wholeStage: gPrev.wholeStage || gNext.wholeStage };
    }
  }
  return { a: 1, b: 1, weighting: 'uniform', wholeStage: false };
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
