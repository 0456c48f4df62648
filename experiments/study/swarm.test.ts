/**
 * The churn study's validation harness on a tiny case: the real coordinator and Node volunteers
 * as processes, the operator's churn, a prediction priced from the run's measured quantities.
 */
import { describe, it, expect } from 'vitest';
import { runSwarm } from './swarm.js';
import { predictSwarm, type ValidationOptions } from './study.js';
import type { BaseRun, ForkRecord } from './fork.js';

describe('swarm validation harness', () => {
  it('runs the coordinator and volunteer processes under churn, replaces dropped tabs and measures what the pricer needs', async () => {
    const v: ValidationOptions = {
      fork: { stages: 4, layersPerStage: 1, dModel: 64, nHeads: 4, seqLen: 16, microbatches: 2, batch: 1, lr: 3e-3, seed: 1234, lrScale: 1.1, replicaEvery: 2, edge: 'reinit', forkPoints: [2], horizon: 2, evalEvery: 2, evalBatches: 1, strategies: ['checkfree'] },
      targetIteration: 6,
      strategies: ['checkfree'],
      runs: 1,
      run: { evalEvery: 2, checkpointEvery: 10, churnProbability: 0.08, churnSeed: 3, warmupIterations: 2, replacementWaitMs: 200, maxIterations: 10, timeoutMs: 80_000 },
    };
    // A target no run reaches: the run goes to maxIterations, so churn certainly strikes on the way.
    const r = await runSwarm({ ...v.run, strategy: 'checkfree', targetLoss: 0.01, stages: 4, microbatches: 2, batch: 1, seqLen: 16, lr: 3e-3, seed: 1234, evalBatches: 1, replicaEvery: 2 });
    expect(r.points.length).toBeGreaterThanOrEqual(10);
    expect(r.timeToTarget).toBeNull();
    expect(r.iterationSeconds).toBeGreaterThan(0);
    expect(r.points.filter((p) => p.valLoss !== null).length).toBeGreaterThanOrEqual(4);
    // The churn is seeded: seed 3 fails stages 1 and 3 after iteration 3 and stage 3 after 8, so
    // tabs were dropped, replaced, and the run went on past them.
    expect(r.failures).toBeGreaterThanOrEqual(1);
    expect(r.recoverySeconds.length).toBeGreaterThanOrEqual(1);
    expect(r.recoverySeconds.length).toBeLessThanOrEqual(r.failures);
    for (const s of r.recoverySeconds) expect(s).toBeGreaterThan(0);
    // The prediction from the measured quantities: a positive time with an ordered band.
    const base: BaseRun = { order: 'plain', curve: r.points.filter((p) => p.valLoss !== null).map((p) => ({ iteration: p.iteration, loss: p.valLoss! })), trainLoss: [], iterationSeconds: r.iterationSeconds };
    base.curve.unshift({ iteration: 0, loss: 6 });
    const forks: ForkRecord[] = [];
    const target = base.curve[base.curve.length - 1]!.loss;
    const pr = predictSwarm(r, v, forks, [base], target, 1);
    expect(pr.p05).toBeLessThanOrEqual(pr.mean * 1.0001);
    expect(pr.mean).toBeLessThanOrEqual(pr.p95 * 1.0001);
    expect(pr.mean).toBeGreaterThan(0);
  }, 110_000);
});
