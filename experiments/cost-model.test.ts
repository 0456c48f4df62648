import { describe, it, expect } from 'vitest';
import { simulatePipeline } from './pipeline-simulator.js';
import { forwardPath } from '../shared/schedule/paths.js';
import { simulateIteration, medianTiming, type IterationTiming } from './timeline.js';
import { gatherSeconds, hopSeconds, slotCost, storageDownloadSeconds, storageUploadSeconds, checkpointEveryIterations, type CostContext } from './cost-model.js';

function uniform(S: number, M: number, swap: boolean, f = 1, b = 1): IterationTiming {
  const grid = (v: number) => Array.from({ length: M }, (_, mb) => new Array<number>(forwardPath(mb, S, swap).length).fill(v));
  return { swap, tasks: { forward: grid(f), backward: grid(b) }, step: new Array<number>(S).fill(0) };
}

describe('simulateIteration', () => {
  it('reproduces the unit-time 1F1B simulator when every task takes 1 and hops are free', () => {
    for (const S of [1, 2, 3, 4, 6]) {
      for (const M of [1, 2, 4, 8]) {
        for (const swap of [false, true]) {
          const want = simulatePipeline({ nStages: S, nMicrobatches: M, policy: '1f1b', swap }).makespan;
          const got = simulateIteration({ nStages: S, timing: uniform(S, M, swap), hopSeconds: 0 }).seconds;
          expect(got, `S=${S} M=${M} swap=${swap}`).toBeCloseTo(want, 9);
        }
      }
    }
  });

  it('adds one relay per stage boundary for a single microbatch', () => {
    const S = 4;
    const t = uniform(S, 1, false, 0.2, 0.4);
    t.step = [0.01, 0.02, 0.03, 0.05];
    const r = simulateIteration({ nStages: S, timing: t, hopSeconds: 0.1, inputSeconds: 0.03, barrierSeconds: 0.06 });
    // 4 forward + 4 backward tasks in series, 3 hops each way, input, barrier, slowest step.
    expect(r.seconds).toBeCloseTo(0.03 + 4 * 0.2 + 4 * 0.4 + 6 * 0.1 + 0.06 + 0.05, 9);
    expect(r.serialSeconds).toBeCloseTo(4 * 0.6 + 0.11, 9);
  });

  it('overlaps stages: M microbatches take far less than M times one', () => {
    const one = simulateIteration({ nStages: 4, timing: uniform(4, 1, false), hopSeconds: 0 }).seconds;
    const eight = simulateIteration({ nStages: 4, timing: uniform(4, 8, false), hopSeconds: 0 }).seconds;
    expect(eight).toBeLessThan(8 * one * 0.5);
    expect(eight).toBeGreaterThanOrEqual(2 * 8); // the busiest stage runs 16 unit tasks
  });

  it('redundant: each stage also runs its successor, so uniform tasks take twice as long', () => {
    const base = simulateIteration({ nStages: 4, timing: uniform(4, 4, false), hopSeconds: 0 }).seconds;
    const red = simulateIteration({ nStages: 4, timing: uniform(4, 4, false), hopSeconds: 0, redundant: true }).seconds;
    expect(red).toBeCloseTo(2 * base, 9);
    // Uneven stages: the extra on stage s is stage s+1's time.
    const t = uniform(2, 1, false);
    t.tasks.forward[0] = [1, 3];
    t.tasks.backward[0] = [1, 3];
    const r = simulateIteration({ nStages: 2, timing: t, hopSeconds: 0, redundant: true });
    expect(r.seconds).toBeCloseTo(4 + 4 + 4 + 4, 9);
  });

  it('rejects timings that do not match the paths', () => {
    const t = uniform(4, 2, false);
    expect(() => simulateIteration({ nStages: 4, timing: { ...t, swap: true }, hopSeconds: 0 })).toThrow(RangeError);
  });

  it('medianTiming takes element-wise medians', () => {
    const a = uniform(2, 1, false, 1, 1);
    const b = uniform(2, 1, false, 3, 5);
    const c = uniform(2, 1, false, 2, 9);
    const m = medianTiming([a, b, c]);
    expect(m.tasks.forward[0]).toEqual([2, 2]);
    expect(m.tasks.backward[0]).toEqual([5, 5]);
  });
});

describe('network and checkpoint costs', () => {
  const net = { upMbps: 100, downMbps: 200, latencyMs: 30 };

  it('prices transfers from bytes, bandwidth and latency', () => {
    expect(hopSeconds(net, 1_250_000)).toBeCloseTo(0.03 + 0.1, 9); // 10 Mbit at 100 Mbit/s
    expect(storageDownloadSeconds(net, 2_500_000)).toBeCloseTo(0.03 + 0.1, 9);
    expect(storageUploadSeconds(net, [1_250_000, 2_500_000])).toBeCloseTo(0.03 + 0.2, 9);
    // Two neighbours send 1.25 MB each: uplinks in parallel (0.1 s), the receiver's downlink takes 20 Mbit / 200 = 0.1 s.
    expect(gatherSeconds(net, [1_250_000, 1_250_000])).toBeCloseTo(0.03 + 0.1, 9);
    expect(gatherSeconds(net, [])).toBe(0);
  });

  it('Young/Daly: sqrt(2 C / lambda) in iterations', () => {
    expect(checkpointEveryIterations(1, 1, 1, 0.02)).toBe(10);
    expect(checkpointEveryIterations(2, 4, 2, 0.01)).toBe(7); // sqrt(2 * 0.5 / 0.02) = 7.07
    expect(checkpointEveryIterations(1, 1, 4, 0)).toBeNull();
    expect(checkpointEveryIterations(0, 1, 4, 0.5)).toBe(1);
  });

  it('slotCost: one replacement wait per slot, none for a lossless redundant restore', () => {
    const ctx: CostContext = {
      params: { network: net, replacementWaitSeconds: 10 },
      bytes: { stage: [1e6, 1e6], activation: 1000, tokens: 100, embed: 1000, head: 1000 },
      nStages: 2,
      redundant: false,
    };
    const timing = uniform(2, 1, false, 0.1, 0.1);
    const base = { timing, checkpointRestoreBytes: [], checkpointSaved: false, replicaRefreshBytes: [] };
    const plain = slotCost(ctx, { ...base, recoveries: [] });
    expect(plain.recovery).toBe(0);
    const rec = (stage: number, needsReplacement: boolean) => ({ stage, method: 'reinit' as const, fallback: false, sourceBytes: [], replicaRetakeBytes: [], needsReplacement, description: '' });
    expect(slotCost(ctx, { ...base, recoveries: [rec(0, true), rec(1, true)] }).recovery).toBeCloseTo(10, 9);
    expect(slotCost(ctx, { ...base, recoveries: [rec(0, false)] }).recovery).toBe(0);
    // Redundancy: compute mode runs the successor too (no wait on a restore); copy mode ships the
    // state to the predecessor after each step and waits for a replacement on a restore.
    const red = (stage: number) => ({ ...rec(stage, false), method: 'redundant' as const, sourceBytes: [3e6, 3e6] });
    const compute = { ...ctx, redundant: true, redundantCost: 'compute' as const };
    const copy = { ...ctx, redundant: true, redundantCost: 'copy' as const };
    expect(slotCost(compute, { ...base, recoveries: [] }).iteration).toBeGreaterThan(plain.iteration);
    expect(slotCost(compute, { ...base, recoveries: [red(0)] }).recovery).toBeCloseTo(gatherSeconds(net, [3e6, 3e6]), 9);
    expect(slotCost(copy, { ...base, recoveries: [] }).iteration).toBeCloseTo(plain.iteration + gatherSeconds(net, [3e6]), 9);
    expect(slotCost(copy, { ...base, recoveries: [red(0)] }).recovery).toBeCloseTo(10 + gatherSeconds(net, [3e6, 3e6]), 9);
    const ck = slotCost(ctx, { ...base, recoveries: [], checkpointSaved: true });
    expect(ck.checkpoint).toBeCloseTo(storageUploadSeconds(net, [3e6, 3e6]), 9);
    expect(ck.total).toBeCloseTo(plain.total + ck.checkpoint, 9);
  });
});
