import { describe, it, expect } from 'vitest';
import { backOnCurve, curveTolerance, failurePoints, meanLag, relativeDistance } from './cpsr-recovery-cost.js';

const ref = (i: number) => 5 - 0.1 * i;

describe('bench:cpsr-swarm recovery cost', () => {
  it('a rollback pays its recomputation; on the curve at F it costs exactly F - checkpoint', () => {
    expect(backOnCurve({ failure: 20, resumeAt: 17, after: 5, tol: 0.01, loss: ref, ref })).toEqual({ iteration: 20, cost: 3 });
  });

  it('without a rollback the first evaluation is F + 1; a stale stage costs until its loss is within tol', () => {
    expect(backOnCurve({ failure: 20, resumeAt: 20, after: 5, tol: 0.01, loss: ref, ref })).toEqual({ iteration: 21, cost: 1 });
    // 3% above the curve at 21, 1.5% at 22, 0.5% at 23: back at 23 with tol 1%
    const gap: Record<number, number> = { 21: 1.03, 22: 1.015, 23: 1.005 };
    const loss = (i: number) => ref(i) * (gap[i] ?? 1);
    expect(backOnCurve({ failure: 20, resumeAt: 20, after: 5, tol: 0.01, loss, ref })).toEqual({ iteration: 23, cost: 3 });
    // never back: after + 1 (+ the recomputation)
    const far = (i: number) => ref(i) * 1.1;
    expect(backOnCurve({ failure: 20, resumeAt: 20, after: 5, tol: 0.01, loss: far, ref })).toEqual({ iteration: null, cost: 6 });
    expect(backOnCurve({ failure: 20, resumeAt: 18, after: 5, tol: 0.01, loss: far, ref })).toEqual({ iteration: null, cost: 8 });
    // a missing evaluation is not "back"
    expect(backOnCurve({ failure: 20, resumeAt: 20, after: 2, tol: 0.01, loss: () => NaN, ref }).iteration).toBeNull();
  });

  it('the tolerance is twice the RMS relative deviation from the 5-point moving average', () => {
    const smooth = Array.from({ length: 30 }, (_, i) => ref(i));
    expect(curveTolerance(smooth, [10, 11, 12])).toBeCloseTo(0, 12);
    // +-1% alternating around a flat 2: the moving average of 5 alternating points is 2 +- 0.004
    const zig = Array.from({ length: 30 }, (_, i) => 2 * (1 + (i % 2 ? 0.01 : -0.01)));
    const m = (2 * (1 + 0.01) * 2 + 2 * (1 - 0.01) * 3) / 5; // at an even i: 3 lows, 2 highs
    const d = (2 * 0.99 - m) / m;
    expect(curveTolerance(zig, [10])).toBeCloseTo(2 * Math.abs(d), 12);
    expect(() => curveTolerance(zig, [0, 1])).toThrow(/5 evaluated neighbours/);
  });

  it('relative distance', () => {
    expect(relativeDistance(new Float32Array([3, 4]), new Float32Array([0, 0.5]))).toBeCloseTo(Math.sqrt(9 + 12.25) / 0.5, 6);
    expect(() => relativeDistance(new Float32Array(2), new Float32Array(3))).toThrow(/lengths/);
  });

  it("the mean lag is the gap over the reference's local descent per iteration, in iterations", () => {
    // the reference falls 0.1 per iteration; a run 0.3 above it at 21, 0.2 at 22, 0.1 at 23 is 3, 2, 1 iterations behind
    const gap: Record<number, number> = { 21: 0.3, 22: 0.2, 23: 0.1 };
    const r = meanLag({ failure: 20, after: 3, span: [16, 17, 18, 19, 20, 21, 22, 23], loss: (i) => ref(i) + (gap[i] ?? 0), ref });
    expect(r.slope).toBeCloseTo(-0.1, 12);
    expect(r.lag).toBeCloseTo(2, 12);
    // on the curve: 0; a flat or rising reference, or a missing evaluation: NaN
    expect(meanLag({ failure: 20, after: 3, span: [18, 19, 20], loss: ref, ref }).lag).toBeCloseTo(0, 12);
    expect(meanLag({ failure: 20, after: 3, span: [18, 19, 20], loss: () => 1, ref: () => 1 }).lag).toBeNaN();
    expect(meanLag({ failure: 20, after: 3, span: [18, 19, 20], loss: (i) => (i === 22 ? NaN : ref(i)), ref }).lag).toBeNaN();
  });

  it('failures are placed the horizon past the checkpoint nearest each fraction of the budget', () => {
    // checkpoints after 1, 11, 21, ...; budget 224: 56 -> 51 + 5, 112 -> 111 + 5, 168 -> 161 + 5
    expect(failurePoints(224, 10, 5)).toEqual([
      { failure: 56, checkpoint: 51, checkpoints: 6 },
      { failure: 116, checkpoint: 111, checkpoints: 12 },
      { failure: 166, checkpoint: 161, checkpoints: 17 },
    ]);
    // checkpoints after 1, 4, 7, 10: the one nearest 10 - 1 is 10 (7 is 2 away), the failure at 11
    expect(failurePoints(20, 3, 1, [0.5])).toEqual([{ failure: 11, checkpoint: 10, checkpoints: 4 }]);
    expect(() => failurePoints(100, 10, 10)).toThrow(/horizon/);
  });
});
