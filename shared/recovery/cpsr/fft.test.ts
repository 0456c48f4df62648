import { describe, expect, it } from 'vitest';
import { fft, fftReal, ifft } from './fft.js';
import { applyOperator, denoiseOperator, denoiseSeries } from './fdd.js';
import { CpsrError } from './errors.js';
import { mulberry32 as mulberry } from '../../model/rng.js';

function dft(re: ArrayLike<number>, im: ArrayLike<number>) {
  const n = re.length;
  const outRe = new Float64Array(n);
  const outIm = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    for (let t = 0; t < n; t++) {
      const a = (-2 * Math.PI * k * t) / n;
      outRe[k] += re[t]! * Math.cos(a) - im[t]! * Math.sin(a);
      outIm[k] += re[t]! * Math.sin(a) + im[t]! * Math.cos(a);
    }
  }
  return { re: outRe, im: outIm };
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('fft', () => {
  it('matches the O(n^2) DFT for power-of-two and other lengths (Bluestein), and round-trips', () => {
    const rnd = mulberry(7);
    for (const n of [1, 2, 3, 5, 7, 8, 12, 16, 17, 31, 64, 100]) {
      const x = { re: Float64Array.from({ length: n }, () => rnd() - 0.5), im: Float64Array.from({ length: n }, () => rnd() - 0.5) };
      const X = fft(x);
      const ref = dft(x.re, x.im);
      expect(maxAbs(X.re, ref.re), `re n=${n}`).toBeLessThan(1e-9 * n);
      expect(maxAbs(X.im, ref.im), `im n=${n}`).toBeLessThan(1e-9 * n);
      const back = ifft(X);
      expect(maxAbs(back.re, x.re), `round trip n=${n}`).toBeLessThan(1e-12 * n);
      expect(maxAbs(back.im, x.im)).toBeLessThan(1e-12 * n);
    }
  });

  it('a pure tone lands in its two bins', () => {
    const n = 12;
    const X = fftReal(Array.from({ length: n }, (_, t) => Math.cos((2 * Math.PI * 3 * t) / n)));
    const mag = Array.from(X.re, (r, k) => Math.hypot(r, X.im[k]!));
    mag.forEach((m, k) => expect(m).toBeCloseTo(k === 3 || k === 9 ? n / 2 : 0, 9));
  });

  it('refuses empty or mismatched input', () => {
    expect(() => fft({ re: new Float64Array(0), im: new Float64Array(0) })).toThrow(CpsrError);
    expect(() => fft({ re: new Float64Array(3), im: new Float64Array(2) })).toThrow(/equally long/);
  });
});

describe('FFT-based denoising', () => {
  const times = [0, 10, 20, 30, 45, 60, 70, 80, 90, 100, 110, 120]; // unequal intervals

  it('keeps a line through unequal times exactly and removes an alternating (highest-frequency) ripple', () => {
    const line = times.map((t) => 0.3 - 0.002 * t);
    const noisy = line.map((v, i) => v + (i % 2 ? 0.01 : -0.01));
    expect(maxAbs(denoiseSeries(line, times), line)).toBeLessThan(1e-12);
    const out = denoiseSeries(noisy, times, { keep: 0.5 });
    const errBefore = maxAbs(noisy, line);
    expect(maxAbs(out, line)).toBeLessThan(0.25 * errBefore);
  });

  it('keep = 1 is the identity; keep = 0 is the least-squares line', () => {
    const rnd = mulberry(3);
    const x = times.map(() => rnd());
    expect(maxAbs(denoiseSeries(x, times, { keep: 1 }), x)).toBeLessThan(1e-12);
    const y = denoiseSeries(x, times, { keep: 0 });
    // residuals of a least-squares line are orthogonal to 1 and t
    const r = x.map((v, i) => v - y[i]!);
    expect(Math.abs(r.reduce((a, v) => a + v, 0))).toBeLessThan(1e-12);
    expect(Math.abs(r.reduce((a, v, i) => a + v * times[i]!, 0))).toBeLessThan(1e-9);
    // and y is a line: equal slopes between any two points
    const slope = (i: number, j: number) => (y[j]! - y[i]!) / (times[j]! - times[i]!);
    expect(slope(0, 5)).toBeCloseTo(slope(3, 11), 12);
  });

  it('the operator is the same filter as the series function', () => {
    const rnd = mulberry(11);
    const x = times.map(() => rnd());
    expect(maxAbs(applyOperator(denoiseOperator(times), x), denoiseSeries(x, times))).toBeLessThan(1e-12);
  });

  it('refuses unordered times and a bad keep', () => {
    expect(() => denoiseOperator([0, 5, 5])).toThrow(/strictly increasing/);
    expect(() => denoiseOperator([0, 1, 2], { keep: 2 })).toThrow(/keep/);
  });
});
