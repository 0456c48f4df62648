import { describe, expect, it } from 'vitest';
import { HopTimes, inFlightWindow, type StageTiming } from './in-flight-window.js';

const uniform = (S: number, k: number, computeMs: number | null, hopMs: number | null): StageTiming[] =>
  Array.from({ length: S }, () => ({ replicas: k, computeMs, hopMs }));

describe('inFlightWindow', () => {
  it('is 1F1B depth (stages x widest group) before anything is measured', () => {
    expect(inFlightWindow({ stages: uniform(4, 1, null, null), microbatches: 32, maxPerTab: 8 })).toEqual({ size: 4, depth: 4, wanted: null, cap: 8 });
    // One stage unmeasured is enough to wait.
    const stages = [...uniform(3, 2, 50, 100), { replicas: 3, computeMs: 50, hopMs: null }];
    expect(inFlightWindow({ stages, microbatches: 32, maxPerTab: 8 }).size).toBe(12);
  });

  it('is S k (1 + L/t) for equal stages', () => {
    // t = 50 ms compute, L = 150 ms round trip: 4 x 1 x (1 + 3) = 16.
    expect(inFlightWindow({ stages: uniform(4, 1, 50, 150), microbatches: 64, maxPerTab: 64 })).toMatchObject({ size: 16, wanted: 16 });
    // Two replicas per stage: twice that.
    expect(inFlightWindow({ stages: uniform(4, 2, 50, 150), microbatches: 64, maxPerTab: 64 })).toMatchObject({ size: 32, wanted: 32 });
    // L/t = 0.5: 4 x 1.5 = 6; non-integers round up.
    expect(inFlightWindow({ stages: uniform(4, 1, 100, 50), microbatches: 64, maxPerTab: 64 }).size).toBe(6);
    expect(inFlightWindow({ stages: uniform(3, 1, 100, 10), microbatches: 64, maxPerTab: 64 }).size).toBe(4); // ceil(3.3)
  });

  it('follows the bottleneck stage (Little\'s law) when stages differ', () => {
    // cycle = 2(10+90) + 2(50+50) = 400 ms; bottleneck 2 x 50 = 100 ms per microbatch: 4.
    const stages = [
      { replicas: 1, computeMs: 10, hopMs: 90 },
      { replicas: 1, computeMs: 50, hopMs: 50 },
    ];
    expect(inFlightWindow({ stages, microbatches: 64, maxPerTab: 64 })).toMatchObject({ wanted: 4, size: 4 });
    // The slow stage gets a second replica: its time per microbatch halves, so twice as many are needed.
    stages[1]!.replicas = 2;
    expect(inFlightWindow({ stages, microbatches: 64, maxPerTab: 64 })).toMatchObject({ wanted: 8, size: 8 });
  });

  it('never goes below the 1F1B depth, above M, or above maxPerTab x the narrowest group', () => {
    // Loopback: round trips negligible, still depth.
    expect(inFlightWindow({ stages: uniform(4, 1, 100, 0), microbatches: 64, maxPerTab: 8 }).size).toBe(4);
    // Only M microbatches exist.
    expect(inFlightWindow({ stages: uniform(4, 1, 10, 1000), microbatches: 6, maxPerTab: 64 }).size).toBe(6);
    expect(inFlightWindow({ stages: uniform(4, 2, 10, 1000), microbatches: 3, maxPerTab: 64 }).size).toBe(3);
    // Memory cap: 8 per tab with single-replica stages.
    expect(inFlightWindow({ stages: uniform(4, 1, 10, 1000), microbatches: 64, maxPerTab: 8 })).toMatchObject({ size: 8, cap: 8 });
    // ... scaled by the narrowest group: 8 x 2.
    const mixed = [...uniform(2, 2, 10, 1000), ...uniform(2, 3, 10, 1000)];
    expect(inFlightWindow({ stages: mixed, microbatches: 64, maxPerTab: 8 })).toMatchObject({ size: 16, cap: 16, depth: 12 });
    // A cap below the depth leaves the depth (the pipeline must fill): --max-in-flight 1 = plain 1F1B.
    expect(inFlightWindow({ stages: uniform(4, 2, 10, 1000), microbatches: 64, maxPerTab: 1 }).size).toBe(8);
    // Zero compute (a tab claiming none): as many as the bounds allow, never Infinity.
    expect(inFlightWindow({ stages: uniform(4, 1, 0, 100), microbatches: 64, maxPerTab: 8 }).size).toBe(8);
    // Degenerate inputs stay >= 1.
    expect(inFlightWindow({ stages: [], microbatches: 0, maxPerTab: 0 }).size).toBe(1);
  });
});

describe('HopTimes', () => {
  it('splits the measured response into compute and round trip; a report outside [0, response] is clamped', () => {
    const h = new HopTimes();
    const a = {};
    const b = {};
    const c = {};
    h.record(a, 300, 100);
    expect(h.of(a)).toEqual({ computeMs: 100, hopMs: 200 });
    // Claims more compute than the whole response took: all of it is compute, no round trip.
    h.record(b, 300, 10_000);
    expect(h.of(b)).toEqual({ computeMs: 300, hopMs: 0 });
    h.record(c, 300, Number.NaN);
    expect(h.of(c)).toEqual({ computeMs: 0, hopMs: 300 });
    // Moving average: 0.7 old + 0.3 new.
    h.record(a, 100, 100);
    expect(h.of(a)!.computeMs).toBeCloseTo(100, 9);
    expect(h.of(a)!.hopMs).toBeCloseTo(140, 9);
  });

  it('gives a stage the medians of its measured replicas, so one tab cannot set them alone', () => {
    const h = new HopTimes();
    const [a, b, c, d] = [{}, {}, {}, {}];
    h.record(a, 200, 100);
    h.record(b, 220, 100);
    h.record(c, 100_000, 0); // a liar: all round trip
    expect(h.stageTiming([a, b, c, d])).toEqual({ replicas: 4, computeMs: 100, hopMs: 120 });
    expect(h.stageTiming([d])).toEqual({ replicas: 1, computeMs: null, hopMs: null });
    h.forget(a);
    expect(h.of(a)).toBeUndefined();
  });
});
