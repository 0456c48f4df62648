/**
 * A small complex FFT for FFT-based data denoising (fdd.ts): iterative radix-2 Cooley-Tukey for
 * power-of-two lengths, Bluestein's chirp-z (three radix-2 FFTs of length >= 2n-1) for any other
 * length, so a checkpoint history of any length transforms exactly. No library: the sizes here
 * are a few to a few hundred points per series, and the test compares against the O(n^2) DFT.
 *
 * Convention: X[k] = sum_t x[t] exp(-2 pi i k t / n); the inverse divides by n.
 */
import { CpsrError } from './errors.js';

export interface Complex {
  re: Float64Array;
  im: Float64Array;
}

const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

/** In-place radix-2 transform of (re, im), length a power of two; `inverse` flips the sign (no 1/n). */
function radix2(re: Float64Array, im: Float64Array, inverse: boolean): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j]!, re[i]!];
      [im[i], im[j]] = [im[j]!, im[i]!];
    }
  }
  const sign = inverse ? 1 : -1;
  for (let len = 2; len <= n; len <<= 1) {
    const ang = (sign * 2 * Math.PI) / len;
    const half = len >> 1;
    for (let i = 0; i < n; i += len) {
      for (let k = 0; k < half; k++) {
        const wr = Math.cos(ang * k);
        const wi = Math.sin(ang * k);
        const a = i + k;
        const b = a + half;
        const xr = re[b]! * wr - im[b]! * wi;
        const xi = re[b]! * wi + im[b]! * wr;
        re[b] = re[a]! - xr;
        im[b] = im[a]! - xi;
        re[a] = re[a]! + xr;
        im[a] = im[a]! + xi;
      }
    }
  }
}

/** Bluestein: any length n through a circular convolution of length m = 2^ceil(log2(2n-1)). */
function bluestein(re: Float64Array, im: Float64Array, inverse: boolean): void {
  const n = re.length;
  let m = 1;
  while (m < 2 * n - 1) m <<= 1;
  const sign = inverse ? 1 : -1;
  // chirp w[t] = exp(sign * i pi t^2 / n); t^2 mod 2n keeps the angle accurate for large t.
  const wr = new Float64Array(n);
  const wi = new Float64Array(n);
  for (let t = 0; t < n; t++) {
    const ang = (sign * Math.PI * ((t * t) % (2 * n))) / n;
    wr[t] = Math.cos(ang);
    wi[t] = Math.sin(ang);
  }
  const ar = new Float64Array(m);
  const ai = new Float64Array(m);
  for (let t = 0; t < n; t++) {
    ar[t] = re[t]! * wr[t]! - im[t]! * wi[t]!;
    ai[t] = re[t]! * wi[t]! + im[t]! * wr[t]!;
  }
  const br = new Float64Array(m);
  const bi = new Float64Array(m);
  br[0] = wr[0]!;
  bi[0] = -wi[0]!;
  for (let t = 1; t < n; t++) {
    br[t] = br[m - t] = wr[t]!;
    bi[t] = bi[m - t] = -wi[t]!;
  }
  radix2(ar, ai, false);
  radix2(br, bi, false);
  for (let k = 0; k < m; k++) {
    const r = ar[k]! * br[k]! - ai[k]! * bi[k]!;
    ai[k] = ar[k]! * bi[k]! + ai[k]! * br[k]!;
    ar[k] = r;
  }
  radix2(ar, ai, true);
  for (let t = 0; t < n; t++) {
    const cr = ar[t]! / m;
    const ci = ai[t]! / m;
    re[t] = cr * wr[t]! - ci * wi[t]!;
    im[t] = cr * wi[t]! + ci * wr[t]!;
  }
}

function transform(x: Complex, inverse: boolean): Complex {
  const n = x.re.length;
  if (n === 0 || x.im.length !== n) throw new CpsrError(`fft: real and imaginary parts must be non-empty and equally long (got ${x.re.length}, ${x.im.length})`);
  const re = Float64Array.from(x.re);
  const im = Float64Array.from(x.im);
  if (n > 1) (isPow2(n) ? radix2 : bluestein)(re, im, inverse);
  if (inverse) for (let t = 0; t < n; t++) (re[t]! /= n), (im[t]! /= n);
  return { re, im };
}

/** The discrete Fourier transform of `x` (any length >= 1); the input is not modified. */
export function fft(x: Complex): Complex {
  return transform(x, false);
}

/** The inverse transform (divides by n): ifft(fft(x)) = x up to rounding. */
export function ifft(x: Complex): Complex {
  return transform(x, true);
}

/** fft of a real series. */
export function fftReal(x: ArrayLike<number>): Complex {
  return fft({ re: Float64Array.from(x), im: new Float64Array(x.length) });
}
