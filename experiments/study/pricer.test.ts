import { describe, it, expect } from 'vitest';
import { checkpointClosedForm, price, swarmFailureRate, youngDalyIterations } from './pricer.js';

describe('Monte Carlo pricer', () => {
  it('matches the closed form of checkpointing with no recovery cost (and finds the Young/Daly interval)', () => {
    const lambda = 0.01;
    const cost = 2;
    for (const every of [10, 20, 50]) {
      const mc = price({ targetIterations: 1000, failuresPerIteration: lambda, nStages: 4, iterationCost: 1, recoveryCost: 0, checkpoint: { every, cost, restoreCost: 0 } }, 4000, 7);
      const exact = checkpointClosedForm(1000, every, cost, lambda);
      expect(Math.abs(mc.mean - exact)).toBeLessThan(4 * mc.stderr + 1e-9);
      expect(Math.abs(mc.mean - exact) / exact).toBeLessThan(0.01);
    }
    // The closed form's optimum over integer intervals sits at Young/Daly's sqrt(2c/lambda) = 20.
    const yd = youngDalyIterations(cost, lambda);
    expect(yd).toBe(20);
    const best = [5, 10, 15, 20, 25, 30, 40, 60].reduce((b, k) => (checkpointClosedForm(1000, k, cost, lambda) < checkpointClosedForm(1000, b, cost, lambda) ? k : b));
    expect(Math.abs(best - yd)).toBeLessThanOrEqual(5);
  });

  it('without failures every strategy takes exactly target x iteration cost', () => {
    const r = price({ targetIterations: 300, failuresPerIteration: 0, nStages: 6, iterationCost: 1.2, recoveryCost: 5, setbacks: [[10]] }, 10, 1);
    expect(r.mean).toBeCloseTo(360, 9);
    expect(r.failures).toBe(0);
  });

  it('rebuild strategies: the expected time grows by the failures times (setback + wait + the abandoned iteration)', () => {
    // lambda small: ~N*lambda failures, each costing setback + wait + on average half an iteration.
    const lambda = 0.002;
    const N = 2000;
    const r = price({ targetIterations: N, failuresPerIteration: lambda, nStages: 2, iterationCost: 1, recoveryCost: 3, setbacks: [[4], [4]] }, 4000, 3);
    const perFailure = 4 + 3 + 0.5;
    const expected = N / (1 - lambda * perFailure); // renewal: every unit of time carries lambda failures
    expect(Math.abs(r.mean - expected) / expected).toBeLessThan(0.01);
    expect(r.p05).toBeLessThanOrEqual(r.p50);
    expect(r.p50).toBeLessThanOrEqual(r.p95);
  });

  it('stage-restore and cpsr pay a checkpoint every K completed iterations but roll nothing back', () => {
    // No failure: N iterations + a checkpoint after every K-th but the last (29 of them for N 300, K 10).
    const sc = { every: 10, cost: 2 };
    const quiet = price({ targetIterations: 300, failuresPerIteration: 0, nStages: 4, iterationCost: 1, recoveryCost: 5, setbacks: [[3]], stageCheckpoint: sc }, 10, 1);
    expect(quiet.mean).toBeCloseTo(300 + 29 * 2, 9);
    // With failures: the measured setback replaces the rollback; with a small setback it beats the
    // rollback of the checkpoint baseline at the same interval, cost and restore cost.
    const lambda = 0.01;
    const common = { targetIterations: 1000, failuresPerIteration: lambda, nStages: 4, iterationCost: 1 };
    const rollback = price({ ...common, recoveryCost: 0, checkpoint: { every: 20, cost: 2, restoreCost: 3 } }, 4000, 5);
    const restore = price({ ...common, recoveryCost: 3, setbacks: [[1], [1], [1], [1]], stageCheckpoint: { every: 20, cost: 2 } }, 4000, 5);
    const noCheckpoints = price({ ...common, recoveryCost: 3, setbacks: [[1], [1], [1], [1]] }, 4000, 5);
    expect(restore.mean).toBeLessThan(rollback.mean);
    // it pays for the checkpoints it takes: 49 of cost 2, each failure abandoning on average half an iteration more
    expect(restore.mean - noCheckpoints.mean).toBeGreaterThan(49 * 2 * 0.9);
    expect(() => price({ ...common, recoveryCost: 0, stageCheckpoint: sc, checkpoint: { every: 20, cost: 2, restoreCost: 3 } }, 10, 1)).toThrow(/either/);
  });

  it('the swarm failure rate is -S ln(1 - p)', () => {
    expect(swarmFailureRate(0.002, 6)).toBeCloseTo(6 * 0.002002, 6);
    expect(() => swarmFailureRate(1, 6)).toThrow(RangeError);
  });
});
