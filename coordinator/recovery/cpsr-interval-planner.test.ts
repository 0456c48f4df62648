/**
 * The interval planner's bookkeeping: it recovers the loss and predictor-error curves from
 * measured points, gives exactly eq. 16 on them (cpsrInterval), Young/Daly with the reason until
 * it can, and its failure rate moves from the prior towards the observed rate.
 */
import { describe, expect, it } from 'vitest';
import { cpsrInterval, youngDalyIterations } from '../../shared/recovery/cpsr/planner.js';
import { CpsrIntervalPlanner, DEFAULT_INTERVAL_PLANNER, describePlan } from './cpsr-interval-planner.js';

const config = { ...DEFAULT_INTERVAL_PLANNER, np: 50_000, priorFailuresPerHour: 36, xi: 0.5 };

describe('CpsrIntervalPlanner', () => {
  it('Young/Daly from the prior and the first measured cost until the curves can be fitted', () => {
    const p = new CpsrIntervalPlanner(config);
    let plan = p.plan();
    expect(plan.source).toBe('young-daly');
    expect(plan.reason).toMatch(/too few loss points/);
    // No iteration yet: 1 s per iteration, lambda = 36 / 3600 per iteration, T_s = 1 iteration.
    expect(plan.inputs.lambda).toBeCloseTo(0.01, 12);
    expect(plan.youngDaly).toBeCloseTo(Math.sqrt(2 / 0.01), 9);
    for (let i = 1; i <= 10; i++) p.observeIteration(i, 5 * Math.exp(-0.02 * i), null, 2);
    p.observeCheckpoint(0.5);
    plan = p.plan();
    expect(plan.reason).toMatch(/too few predictor fits/);
    expect(plan.inputs.alpha1).toBeCloseTo(0.02, 9);
    expect(plan.inputs.ts).toBeCloseTo(0.25, 12);
    expect(plan.interval).toBe(Math.round(youngDalyIterations(0.25, plan.inputs.lambda)));
  });

  it('eq. 16 on the fitted curves; validation losses preferred; non-finite points ignored', () => {
    const p = new CpsrIntervalPlanner(config);
    for (let i = 1; i <= 50; i++) p.observeIteration(i, 9, i % 5 === 0 ? Math.exp(-0.01 * i + 1.5) : null, 1);
    p.observeIteration(51, NaN, Infinity, NaN);
    for (const k of [6, 8, 10, 12]) p.observeFit(k, Math.exp(-0.3 * k - 12));
    p.observeFit(14, null);
    p.observeCheckpoint(0.1);
    const plan = p.plan();
    expect(plan.inputs.lossCurve).toBe('validation');
    expect(plan.inputs.alpha1).toBeCloseTo(0.01, 9);
    expect(plan.inputs.alpha2).toBeCloseTo(1.5, 9);
    expect(plan.inputs.tau1).toBeCloseTo(0.3, 9);
    expect(plan.inputs.tau2).toBeCloseTo(-12, 9);
    const lambda = 1 / (1 / 0.01 + 51);
    expect(plan.inputs.lambda).toBeCloseTo(lambda, 12);
    const want = cpsrInterval({ tau1: 0.3, tau2: -12, alpha1: 0.01, alpha2: 1.5, xi: 0.5, np: 50_000, lambda, ts: 0.1 });
    expect(want.ok).toBe(true);
    if (!want.ok) return;
    expect(plan.source).toBe('cpsr');
    expect(plan.cpsr).toBeCloseTo(want.interval, 6);
    expect(plan.interval).toBe(Math.round(want.interval));
    expect(describePlan(plan)).toMatch(/CPSR eq. 16/);
  });

  it('observed failures raise lambda above the prior; a rising predictor error falls back with the reason', () => {
    const p = new CpsrIntervalPlanner(config);
    for (let i = 0; i < 100; i++) p.observeIteration(i, Math.exp(-0.01 * i + 1), null, 1);
    for (let f = 0; f < 9; f++) p.observeFailure();
    expect(p.plan().inputs.lambda).toBeCloseTo(10 / 200, 12);
    p.observeFit(6, 1e-6);
    p.observeFit(8, 2e-6);
    const plan = p.plan();
    expect(plan.source).toBe('young-daly');
    expect(plan.reason).toMatch(/predictor's loss must be falling/);
  });
});
