/**
 * The predictor's training data (CPSR slides, "Organizing training data for Predictor"): a
 * stage's checkpoints are split into parameter chunks and arranged as chunk x checkpoint; a
 * window is `window` consecutive checkpoints, and its target is the state `m` checkpoints after
 * its end (m = 1 .. horizons).
 *
 * Per parameter, the features of a window ending at checkpoint j (times in units of `unit`, the
 * history's median interval) are:
 *   value  f_i = (z_j - z_{j-i}) / s_c            i = 1 .. window-1  (z: the window denoised by fdd.ts)
 *          v_1 = f_1 / g_1, v_all = f_{W-1} / g_{W-1}  (the denoised recent and whole-window velocity)
 *          r = (x_j - z_j) / s_c                      (the last checkpoint's deviation from its denoised value:
 *                                                    the noise that may revert, or not; the model learns which)
 *   time   h, log h, g_1 .. g_{W-1}               (h: horizon; g_i = t_j - t_{j-i}; the VITP time embedding's input)
 * and the target is y = (x_{j+m} - x_j) / s_c, the raw displacement in units of the chunk's
 * scale s_c = RMS over the chunk of the denoised velocity across the window (one scale per chunk
 * per window: chunks are what makes one small model serve every tensor of the stage).
 */
import { CpsrError } from './errors.js';
import { denoiseOperator, type FddOptions } from './fdd.js';

export interface WindowPair {
  /** Index (in the history) of the window's last checkpoint. */
  end: number;
  /** Index of the target checkpoint (> end). */
  target: number;
}

/**
 * Every (window, target) pair of a history of `k` checkpoints; the pairs whose target is the
 * newest checkpoint are held out for validation, the others train.
 */
export function windowPairs(k: number, window: number, horizons: number): { train: WindowPair[]; val: WindowPair[] } {
  const train: WindowPair[] = [];
  const val: WindowPair[] = [];
  for (let end = window - 1; end < k - 1; end++) {
    for (let m = 1; m <= horizons && end + m < k; m++) (end + m === k - 1 ? val : train).push({ end, target: end + m });
  }
  return { train, val };
}

export const valueFeatureCount = (window: number) => window - 1 + 3;
export const timeFeatureCount = (window: number) => 2 + window - 1;

/** Precomputed per window end: the denoised-difference coefficients and the chunk scales. */
export interface WindowBasis {
  end: number;
  window: number;
  /** coef[(i-1) * W + b]: f_i * s_c = sum_b coef x_{end-W+1+b}. */
  coef: Float64Array;
  /** dev[b]: r * s_c = sum_b dev x_{end-W+1+b} (x_end - z_end). */
  dev: Float64Array;
  /** g_i = t_end - t_{end-i} in units, i = 1 .. W-1. */
  gaps: number[];
  /** One scale per chunk. */
  scales: Float32Array;
  chunkSize: number;
}

/** The basis of the window ending at `end`: filter coefficients from its own times, chunk scales from all its parameters. */
export function windowBasis(states: readonly Float32Array[], times: readonly number[], end: number, window: number, chunkSize: number, fdd: FddOptions): WindowBasis {
  if (end - window + 1 < 0 || end >= states.length) throw new CpsrError(`window ending at ${end} does not fit a history of ${states.length}`);
  const W = window;
  const t = times.slice(end - W + 1, end + 1);
  const D = denoiseOperator(t, fdd);
  const coef = new Float64Array((W - 1) * W);
  for (let i = 1; i < W; i++) for (let b = 0; b < W; b++) coef[(i - 1) * W + b] = D[(W - 1) * W + b]! - D[(W - 1 - i) * W + b]!;
  const dev = Float64Array.from({ length: W }, (_, b) => (b === W - 1 ? 1 : 0) - D[(W - 1) * W + b]!);
  const gaps = Array.from({ length: W - 1 }, (_, k) => t[W - 1]! - t[W - 2 - k]!);
  const n = states[0]!.length;
  const nChunks = Math.ceil(n / chunkSize);
  const scales = new Float32Array(nChunks);
  const xs = states.slice(end - W + 1, end + 1);
  const span = gaps[W - 2]!;
  const last = (W - 2) * W; // row of f_{W-1}
  for (let c = 0; c < nChunks; c++) {
    let ss = 0;
    const hi = Math.min(n, (c + 1) * chunkSize);
    for (let p = c * chunkSize; p < hi; p++) {
      let d = 0;
      for (let b = 0; b < W; b++) d += coef[last + b]! * xs[b]![p]!;
      ss += (d / span) ** 2;
    }
    scales[c] = Math.max(Math.sqrt(ss / (hi - c * chunkSize)), 1e-8);
  }
  return { end, window: W, coef, dev, gaps, scales, chunkSize };
}

export interface FeatureRows {
  n: number;
  value: Float32Array;
  time: Float32Array;
  /** Horizon per row (units), multiplies the network's output (a zero horizon predicts no move). */
  h: Float32Array;
  /** s_c per row: the network's output times this is a raw displacement. */
  scale: Float32Array;
}

/** Feature rows for parameters `params` (indices) of the window `basis`, horizon `h` units. */
export function featureRows(states: readonly Float32Array[], basis: WindowBasis, h: number, params: ArrayLike<number>): FeatureRows {
  const { window: W, coef, dev, gaps, scales, chunkSize, end } = basis;
  const xs = states.slice(end - W + 1, end + 1);
  const n = params.length;
  const fv = valueFeatureCount(W);
  const ft = timeFeatureCount(W);
  const value = new Float32Array(n * fv);
  const time = new Float32Array(n * ft);
  const hs = new Float32Array(n).fill(h);
  const scale = new Float32Array(n);
  const timeRow = [h, Math.log(Math.max(h, 1e-3)), ...gaps];
  for (let r = 0; r < n; r++) {
    const p = params[r]!;
    const s = scales[Math.floor(p / chunkSize)]!;
    scale[r] = s;
    for (let i = 1; i < W; i++) {
      let d = 0;
      for (let b = 0; b < W; b++) d += coef[(i - 1) * W + b]! * xs[b]![p]!;
      value[r * fv + i - 1] = clip(d / s);
    }
    value[r * fv + W - 1] = clip(value[r * fv]! / gaps[0]!);
    value[r * fv + W] = clip(value[r * fv + W - 2]! / gaps[W - 2]!);
    let e = 0;
    for (let b = 0; b < W; b++) e += dev[b]! * xs[b]![p]!;
    value[r * fv + W + 1] = clip(e / s);
    time.set(timeRow, r * ft);
  }
  return { n, value, time, h: hs, scale };
}

/** Normalised features and targets are clipped to +-CLIP (a parameter that starts moving in a quiet chunk must not swamp the fit). */
export const CLIP = 20;
export const clip = (x: number) => (x > CLIP ? CLIP : x < -CLIP ? -CLIP : x);

/** Targets y = clip((x_target - x_end) / s_c) for the rows of `featureRows(..., params)`. */
export function targetRows(states: readonly Float32Array[], pair: WindowPair, rows: FeatureRows, params: ArrayLike<number>): Float32Array {
  const y = new Float32Array(rows.n);
  const a = states[pair.end]!;
  const b = states[pair.target]!;
  for (let r = 0; r < rows.n; r++) y[r] = clip((b[params[r]!]! - a[params[r]!]!) / rows.scale[r]!);
  return y;
}
