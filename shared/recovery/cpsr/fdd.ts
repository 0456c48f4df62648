/**
 * FFT-based data denoising (FDD, CPSR slides "Predictor"): a parameter's values at a run of
 * checkpoints are split into
 *   - the low-frequency baseline: the least-squares line through (iteration, value), fitted in
 *     real time so unequal checkpoint intervals are handled exactly (a plain FFT of a trending
 *     series would smear the trend into every bin through the wrap-around jump);
 *   - the stable mid band: FFT bins 1 .. cutoff of what the line leaves (slow curvature);
 *   - the high-frequency noise: the remaining bins, dropped.
 * The FFT runs over the checkpoint index (our choice: the slides do not say how unequal intervals
 * enter the transform; the time-dependent part lives in the line and the predictor's time
 * embedding).
 *
 * The whole filter is linear in the series, so for a given set of checkpoint times it is one
 * K x K matrix D (built once through fft.ts from the unit vectors); denoising a chunk of N
 * parameters is then N small mat-vecs instead of N FFTs.
 */
import { CpsrError } from './errors.js';
import { fft, ifft } from './fft.js';

export interface FddOptions {
  /**
   * Fraction of the non-DC frequencies kept (0..1): bins k with min(k, K-k) <= round(keep * K/2)
   * survive. 0 keeps only the line, 1 keeps everything (no denoising). Default 0.5.
   */
  keep: number;
}

export const DEFAULT_FDD: FddOptions = { keep: 0.5 };

/** Highest kept bin for a series of `k` points. */
export function cutoffBin(k: number, keep: number): number {
  return Math.round(keep * Math.floor(k / 2));
}

/** Low-pass of the residual, on the checkpoint index: real(ifft(mask * fft(r))). */
function lowPass(r: Float64Array, cutoff: number): Float64Array {
  const k = r.length;
  const X = fft({ re: r, im: new Float64Array(k) });
  for (let b = 0; b < k; b++) {
    if (Math.min(b, k - b) > cutoff) X.re[b] = X.im[b] = 0;
  }
  return ifft(X).re;
}

/**
 * The denoising operator for checkpoints at `times` (strictly increasing): row-major K x K,
 * denoised = D x. Series of 1 or 2 points pass unchanged.
 */
export function denoiseOperator(times: readonly number[], opts: FddOptions = DEFAULT_FDD): Float64Array {
  const k = times.length;
  if (k === 0) throw new CpsrError('fdd: no checkpoint times');
  for (let i = 0; i < k; i++) {
    if (!Number.isFinite(times[i]!) || (i > 0 && !(times[i]! > times[i - 1]!))) throw new CpsrError(`fdd: checkpoint times must be finite and strictly increasing, got ${times.join(', ')}`);
  }
  if (!(opts.keep >= 0 && opts.keep <= 1)) throw new CpsrError(`fdd: keep must be in [0, 1], got ${opts.keep}`);
  const D = new Float64Array(k * k);
  if (k <= 2) {
    for (let i = 0; i < k; i++) D[i * k + i] = 1;
    return D;
  }
  const mean = times.reduce((a, t) => a + t, 0) / k;
  const dt = times.map((t) => t - mean);
  const sxx = dt.reduce((a, d) => a + d * d, 0);
  const cutoff = cutoffBin(k, opts.keep);
  // Column j of D = the filter applied to the unit vector e_j.
  for (let j = 0; j < k; j++) {
    // Line through e_j: intercept 1/k, slope dt_j / sxx (around the mean time).
    const line = dt.map((d) => 1 / k + (dt[j]! * d) / sxx);
    const resid = Float64Array.from(line, (l, i) => (i === j ? 1 : 0) - l);
    const low = lowPass(resid, cutoff);
    for (let i = 0; i < k; i++) D[i * k + j] = line[i]! + low[i]!;
  }
  return D;
}

/** One series denoised (the operator applied once; use denoiseOperator for many series). */
export function denoiseSeries(values: ArrayLike<number>, times: readonly number[], opts: FddOptions = DEFAULT_FDD): Float64Array {
  if (values.length !== times.length) throw new CpsrError(`fdd: ${values.length} values for ${times.length} times`);
  const D = denoiseOperator(times, opts);
  return applyOperator(D, values);
}

/** D x for one series. */
export function applyOperator(D: Float64Array, x: ArrayLike<number>): Float64Array {
  const k = x.length;
  if (D.length !== k * k) throw new CpsrError(`fdd: operator is for ${Math.sqrt(D.length)} points, series has ${k}`);
  const out = new Float64Array(k);
  for (let i = 0; i < k; i++) {
    let s = 0;
    for (let j = 0; j < k; j++) s += D[i * k + j]! * x[j]!;
    out[i] = s;
  }
  return out;
}
