import { describe, it, expect } from 'vitest';
import { outerNesterovStep, pseudoGradient } from './outer-nesterov.js';
import { averageInOrder } from './average.js';

describe('outer Nesterov step', () => {
  it('matches a step computed by hand (lr 0.7, momentum 0.9, carried momentum)', () => {
    const synced = Float32Array.of(1, -2);
    const m = Float32Array.of(0.5, 0);
    outerNesterovStep(synced, m, Float32Array.of(0.1, -0.2), { lr: 0.7, momentum: 0.9 });
    // m = 0.9 * 0.5 + 0.1 = 0.55; synced = 1 - 0.7 * (0.1 + 0.9 * 0.55) = 0.5835
    // m = 0.9 * 0 - 0.2 = -0.2;   synced = -2 - 0.7 * (-0.2 + 0.9 * -0.2) = -1.734
    expect(m[0]).toBeCloseTo(0.55, 7);
    expect(m[1]).toBeCloseTo(-0.2, 7);
    expect(synced[0]).toBeCloseTo(0.5835, 6);
    expect(synced[1]).toBeCloseTo(-1.734, 6);
  });

  it('two steps with exactly representable numbers give exact results (torch SGD nesterov, dampening 0)', () => {
    const synced = Float32Array.of(1);
    const m = Float32Array.of(0);
    outerNesterovStep(synced, m, Float32Array.of(0.5), { lr: 0.5, momentum: 0.5 });
    expect([m[0], synced[0]]).toEqual([0.5, 0.625]); // m = 0.5; 1 - 0.5 * (0.5 + 0.25)
    outerNesterovStep(synced, m, Float32Array.of(0.25), { lr: 0.5, momentum: 0.5 });
    expect([m[0], synced[0]]).toEqual([0.5, 0.375]); // m = 0.25 + 0.25; 0.625 - 0.5 * (0.25 + 0.25)
  });

  it('with lr 1 and momentum 0 the outer step is plain averaging of the replicas', () => {
    const synced = Float32Array.of(1, 2, 3);
    const a = Float32Array.of(0.5, 2.5, 3);
    const b = Float32Array.of(1.5, 1.5, 2);
    const avg = averageInOrder([pseudoGradient(synced, a), pseudoGradient(synced, b)]);
    outerNesterovStep(synced, new Float32Array(3), avg, { lr: 1, momentum: 0 });
    expect(Array.from(synced)).toEqual([1, 2, 2.5]);
  });

  it('rejects mismatched lengths without changing anything', () => {
    const synced = Float32Array.of(1, 2);
    expect(() => outerNesterovStep(synced, new Float32Array(2), new Float32Array(3), { lr: 0.7, momentum: 0.9 })).toThrow(/3 pseudo-gradient values/);
    expect(Array.from(synced)).toEqual([1, 2]);
    expect(() => pseudoGradient(synced, new Float32Array(1))).toThrow(RangeError);
  });

  it('averages in float32 in the given order', () => {
    const big = Float32Array.of(2 ** 24);
    const one = Float32Array.of(1);
    // float32: (2^24 + 1) rounds to 2^24, so the order of additions shows.
    expect(averageInOrder([big, one, one])[0]).toBe(Math.fround(2 ** 24 / 3));
    expect(averageInOrder([one, one, big])[0]).toBe(Math.fround((2 ** 24 + 2) / 3));
  });
});
