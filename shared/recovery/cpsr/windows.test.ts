import { describe, expect, it } from 'vitest';
import { featureRows, targetRows, windowBasis, windowPairs, valueFeatureCount } from './windows.js';

describe('windows', () => {
  it('pairs every window with the next 1..horizons checkpoints; the newest target is held out', () => {
    // 7 checkpoints, windows of 4 (ends 3, 4, 5), horizons 2
    expect(windowPairs(7, 4, 2)).toEqual({
      train: [{ end: 3, target: 4 }, { end: 3, target: 5 }, { end: 4, target: 5 }],
      val: [{ end: 4, target: 6 }, { end: 5, target: 6 }],
    });
    expect(windowPairs(4, 4, 2)).toEqual({ train: [], val: [] });
  });

  it('a parameter moving in a straight line: its features are its velocity, no deviation, and its target the exact move', () => {
    // x_p(t) = (p + 1) * t at unequal times (in units); chunk of 2 parameters: s = RMS(1, 2) = sqrt(2.5)
    const times = [0, 1, 3, 4, 6];
    const states = times.map((t) => Float32Array.of(1 * t, 2 * t));
    const b = windowBasis(states, times, 3, 4, 2, { keep: 0.5 });
    expect(b.gaps).toEqual([1, 3, 4]);
    const s = Math.sqrt(2.5);
    expect(b.scales[0]).toBeCloseTo(s, 5);
    const rows = featureRows(states, b, 2, [0, 1]);
    const fv = valueFeatureCount(4);
    for (const p of [0, 1]) {
      const v = (p + 1) / s;
      const f = Array.from(rows.value.subarray(p * fv, (p + 1) * fv));
      // f_1..f_3 = v * gap; velocities v, v; deviation 0
      [v * 1, v * 3, v * 4, v, v, 0].forEach((want, i) => expect(f[i], `param ${p} feature ${i}`).toBeCloseTo(want, 5));
      expect(Array.from(rows.time.subarray(p * 5, p * 5 + 5))).toEqual([2, Math.fround(Math.log(2)), 1, 3, 4]);
    }
    // target: checkpoint 4 (t = 6) from checkpoint 3 (t = 4): (p + 1) * 2 / s
    const y = targetRows(states, { end: 3, target: 4 }, rows, [0, 1]);
    expect(y[0]).toBeCloseTo(2 / s, 5);
    expect(y[1]).toBeCloseTo(4 / s, 5);
  });
});
