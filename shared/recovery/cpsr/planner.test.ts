import { describe, expect, it } from 'vitest';
import { cpsrInterval, estimateXi, expectedCost, fitExpDecay, plannerConstants, youngDalyIterations, type PlannerInputs } from './planner.js';
import { CpsrError } from './errors.js';

// tau_1 = 2, tau_2 = 0, alpha_1 = 0.01, alpha_2 = 1, xi = 1, N_p = 1000, lambda = 1e-3 per iteration, T_s = 5 iterations.
const P: PlannerInputs = { tau1: 2, tau2: 0, alpha1: 0.01, alpha2: 1, xi: 1, np: 1000, lambda: 0.001, ts: 5 };

describe('CPSR planner', () => {
  it('matches the closed form computed by hand', () => {
    // C = 1000 e^-1 / 0.02 = 18393.972; A = 2 C = 36787.944; B = 0.01 - 0.001 = 0.009
    // sqrt(A / 5) = 85.77640; lambda * that = 0.0857764; T_c = 2 / 0.0947764 = 21.10230
    const k = plannerConstants(P);
    expect(k.C).toBeCloseTo(18393.972, 2);
    expect(k.A).toBeCloseTo(36787.944, 2);
    expect(k.B).toBeCloseTo(0.009, 12);
    const plan = cpsrInterval(P);
    expect(plan.ok).toBe(true);
    expect(plan.ok && plan.interval).toBeCloseTo(21.1023, 3);
    // Young/Daly: sqrt(2 * 5 / 0.001) = 100
    expect(plan.youngDaly).toBeCloseTo(100, 9);
    expect(youngDalyIterations(5, 0.001)).toBeCloseTo(100, 9);
  });

  it('the interval is the minimum of the expected cost it is derived from', () => {
    for (const p of [P, { ...P, lambda: 0.004, ts: 1 }, { ...P, tau1: 0.5, np: 50, alpha1: 0.003 }]) {
      const plan = cpsrInterval(p);
      if (!plan.ok) throw new Error(plan.reason);
      const best = expectedCost(plan.interval, p);
      for (const f of [0.5, 0.8, 0.95, 1.05, 1.25, 2]) expect(expectedCost(plan.interval * f, p)).toBeGreaterThan(best);
    }
  });

  it('refuses fits outside the model, keeping Young/Daly', () => {
    const up = cpsrInterval({ ...P, alpha1: -0.01 });
    expect(up).toMatchObject({ ok: false, reason: expect.stringMatching(/training loss must be falling/) });
    expect(up.youngDaly).toBeCloseTo(100, 9);
    expect(cpsrInterval({ ...P, tau1: 0 })).toMatchObject({ ok: false });
    expect(cpsrInterval({ ...P, ts: NaN })).toMatchObject({ ok: false, reason: expect.stringMatching(/ts must be finite/) });
    // failures faster than the loss falls, and a cheap predictor: no finite optimum
    expect(cpsrInterval({ ...P, alpha1: 0.001, lambda: 0.5, np: 1e-9 })).toMatchObject({ ok: false, reason: expect.stringMatching(/no finite optimum/) });
  });
});

describe('fitter', () => {
  it('recovers the rate and offset of an exact exponential (hand values)', () => {
    // y = exp(-0.5 x + 1.2) at x = 1..4: 2.01375, 1.22140, 0.74082, 0.44933
    const f = fitExpDecay([1, 2, 3, 4], [2.0137527, 1.2214028, 0.7408182, 0.449329]);
    expect(f.rate).toBeCloseTo(0.5, 6);
    expect(f.offset).toBeCloseTo(1.2, 6);
    expect(f.r2).toBeCloseTo(1, 9);
  });

  it('least squares on ln y: two points off the line pull the fit half way', () => {
    // ln y = [0, -0.9, -2.1, -3], mean -1.5: slope = sum (x - 1.5)(ly + 1.5) / 5 = (-2.25 - 0.3 - 0.3 - 2.25) / 5 = -1.02
    const f = fitExpDecay([0, 1, 2, 3], [1, Math.exp(-0.9), Math.exp(-2.1), Math.exp(-3)]);
    expect(f.rate).toBeCloseTo(1.02, 9);
    expect(f.r2).toBeLessThan(1);
  });

  it('rejects what cannot be fitted', () => {
    expect(() => fitExpDecay([1], [1])).toThrow(CpsrError);
    expect(() => fitExpDecay([1, 2], [1, 0])).toThrow(/y > 0/);
    expect(() => fitExpDecay([1, 1], [1, 2])).toThrow(/distinct/);
    expect(() => fitExpDecay([1, 2], [1])).toThrow(/2 x for 1 y/);
  });

  it('estimateXi inverts dF = xi N_p mse / 2', () => {
    expect(estimateXi(0.02, 1000, 4e-5)).toBeCloseTo(1, 12);
    expect(() => estimateXi(0.1, 0, 1)).toThrow(CpsrError);
  });
});
