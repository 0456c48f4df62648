import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { checkPath, checkSchedule, fullOrder, pathShape, skipRules, type SkipRules } from './skip-paths';
import { randomSchedule } from './skip-random';
import { collisionSchedule } from './skip-collision';
import { planPath } from './skip-astar';
import { fullSchedule, microbatchPlans, scheduleBounds, unvisitedStages, type ScheduleRequest } from './skip-request';
import { simulateIteration, EDGE_HOP_FRACTION, type StageCosts } from './skip-timing';
import { blockOrder, swapCounter } from './paths';

function costsFor(S: number, seed: number, linkMs = 5): StageCosts {
  const f = Array.from({ length: S }, (_, s) => 10 + ((seed * 7919 + s * 104729) % 37));
  return { forwardMs: f, backwardMs: f.map((x) => 2 * x), linkMs: Array.from({ length: S }, (_, a) => Array.from({ length: S }, (_, b) => (a === b ? 0 : linkMs + ((a + b + seed) % 3)))) };
}

const arbRequest = fc
  .record({
    S: fc.integer({ min: 2, max: 9 }),
    M: fc.integer({ min: 1, max: 8 }),
    r: fc.constantFrom(0, 0.2, 0.25, 0.33, 0.5, 0.7),
    vacantBits: fc.integer({ min: 0, max: 255 }),
    swap: fc.boolean(),
    iteration: fc.integer({ min: 0, max: 50 }),
    seed: fc.integer({ min: 0, max: 1000 }),
    mustBits: fc.integer({ min: 0, max: 255 }),
  })
  .map(({ S, M, r, vacantBits, swap, iteration, seed, mustBits }) => {
    const mid = Array.from({ length: Math.max(0, S - 2) }, (_, i) => i + 1);
    const vacant = mid.filter((s) => (vacantBits >> s) & 1 && (vacantBits & 1) === 1);
    const rules = skipRules({ nStages: S, skipRatio: r, vacant });
    const mustVisit = mid.filter((s) => (mustBits >> s) & 1);
    const req: ScheduleRequest = { rules, microbatches: M, iteration, swap, seed, mustVisit };
    return req;
  });

/** Every rule of one iteration, plus the request's own constraints. */
function expectLegal(orders: number[][], req: ScheduleRequest): void {
  // The bounds of the request, or (documented relaxations, in this order) without mustVisit, without CheckFree+'s swaps.
  const relaxed = [req, { ...req, mustVisit: [] }, { ...req, mustVisit: [], swap: false }];
  const met = relaxed.map((r) => checkSchedule(orders, r.rules, r.microbatches, scheduleBounds(r)));
  expect(met.some((v) => v === null), JSON.stringify(met)).toBe(true);
  // CheckFree+'s partners are on the path, or (no legal path holds them) the path is unswapped.
  const plans = microbatchPlans(req);
  orders.forEach((o, mb) => {
    if (!plans[mb]!.required.every((s) => o.includes(s))) expect(pathShape(o).swaps).toBe(0);
  });
  const seen = orders.flat();
  for (const v of req.rules.vacant) expect(seen).not.toContain(v);
}

describe('random skip schedule', () => {
  it('obeys every rule, the CheckFree+ partners and the least visits, for any S >= 2, M, ratio, vacancies; same seed, same schedule', () => {
    fc.assert(
      fc.property(arbRequest, (req) => {
        const a = randomSchedule(req);
        expectLegal(a, req);
        expect(randomSchedule(req)).toEqual(a);
      }),
      { numRuns: 400 },
    );
  });

  it('with nothing skipped it is today\'s schedule (CheckFree+ swaps included)', () => {
    for (const swap of [false, true]) {
      const req: ScheduleRequest = { rules: skipRules({ nStages: 6, skipRatio: 0 }), microbatches: 4, iteration: 3, swap, seed: 1 };
      expect(randomSchedule(req)).toEqual(Array.from({ length: 4 }, (_, mb) => blockOrder(swapCounter(3, 4, mb), 6, swap)));
    }
  });

  it('draws different paths for different seeds (it is random) and rotates stages that sat out through mustVisit', () => {
    const rules = skipRules({ nStages: 8, skipRatio: 0.5 }); // 2 of 6 intermediates per path
    const draws = new Set(Array.from({ length: 10 }, (_, seed) => JSON.stringify(randomSchedule({ rules, microbatches: 2, iteration: 0, swap: false, seed }))));
    expect(draws.size).toBeGreaterThan(3);
    // 2 microbatches x 2 intermediates < 6: two stages sit out; the next iteration must take them.
    const first = randomSchedule({ rules, microbatches: 2, iteration: 0, swap: false, seed: 4 });
    const out = unvisitedStages(first, rules);
    expect(out.length).toBe(2);
    const next = randomSchedule({ rules, microbatches: 2, iteration: 1, swap: false, seed: 4, mustVisit: out });
    for (const s of out) expect(next.flat()).toContain(s);
  });
});

describe('collision-aware skip schedule', () => {
  it('obeys every rule for any S >= 2, M, ratio, vacancies; deterministic; reports the simulated makespan of what it returns', () => {
    fc.assert(
      fc.property(arbRequest, fc.integer({ min: 0, max: 100 }), (req, cseed) => {
        const costs = costsFor(req.rules.nStages, cseed);
        const a = collisionSchedule(req, costs, { maxNodes: 6, maxExpansions: 4000 });
        expectLegal(a.orders, req);
        expect(a.makespanMs).toBeCloseTo(simulateIteration(a.orders, req.rules.nStages, costs).makespanMs, 9);
        expect(collisionSchedule(req, costs, { maxNodes: 6, maxExpansions: 4000 }).orders).toEqual(a.orders);
      }),
      { numRuns: 120 },
    );
  });

  it('finds a conflict-free plan itself (no fallback) on the bench\'s setting: 8 stages, 8 microbatches, 25-50% skipped, unequal stages', () => {
    for (const r of [0.25, 0.33, 0.5]) {
      for (const swap of [false, true]) {
        const req: ScheduleRequest = { rules: skipRules({ nStages: 8, skipRatio: r }), microbatches: 8, iteration: 1, swap, seed: 7 };
        const res = collisionSchedule(req, costsFor(8, 3, 20), { maxNodes: 16 });
        expect(res.fallback).toBe(false);
        expect(res.solutions).toBeGreaterThanOrEqual(1);
        expectLegal(res.orders, req);
      }
    }
    // And through a vacancy (stage 3 has no tab).
    const req: ScheduleRequest = { rules: skipRules({ nStages: 8, skipRatio: 0.33, vacant: [3] }), microbatches: 8, iteration: 0, swap: false, seed: 1 };
    const res = collisionSchedule(req, costsFor(8, 3, 20), { maxNodes: 16 });
    expect(res.fallback).toBe(false);
    expectLegal(res.orders, req);
  });

  it('routes around a slow stage: with one intermediate 10x slower and room to skip it, no path visits it more than the floor demands', () => {
    const S = 8;
    const f = [10, 10, 10, 100, 10, 10, 10, 10];
    const costs: StageCosts = { forwardMs: f, backwardMs: f.map((x) => 2 * x), linkMs: Array.from({ length: S }, () => new Array(S).fill(1)) };
    const rules = skipRules({ nStages: S, skipRatio: 0.33 });
    const req: ScheduleRequest = { rules, microbatches: 3, iteration: 0, swap: false, seed: 1 };
    const res = collisionSchedule(req, costs, { maxNodes: 32 });
    const visits = res.orders.flat().filter((s) => s === 3).length;
    expect(visits).toBe(scheduleBounds(req).floor[3]);
    expect(res.makespanMs).toBeLessThanOrEqual(simulateIteration(randomSchedule(req), S, costs).makespanMs);
  });

  it('with nothing skipped it is today\'s schedule', () => {
    const req: ScheduleRequest = { rules: skipRules({ nStages: 5, skipRatio: 0 }), microbatches: 3, iteration: 2, swap: true, seed: 1 };
    expect(collisionSchedule(req, costsFor(5, 1)).orders).toEqual(fullSchedule(req));
  });
});

/** Every legal order under `rules` (brute force over permutations; S <= 6). */
function allLegalOrders(rules: SkipRules): number[][] {
  const out: number[][] = [];
  const S = rules.nStages;
  const rec = (prefix: number[]) => {
    if (prefix.length === rules.visit) {
      if (!checkPath(prefix, rules)) out.push([...prefix]);
      return;
    }
    for (let s = 0; s < S; s++) if (!prefix.includes(s)) rec([...prefix, s]);
  };
  rec([]);
  return out;
}

describe('A* for one path', () => {
  it('finds the fastest legal path: its cost is the simulated time of the order it returns and no legal order is faster (brute force, S <= 6)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 6 }), fc.constantFrom(0, 0.2, 0.34, 0.5), fc.integer({ min: 0, max: 100 }), (S, r, seed) => {
        const rules = skipRules({ nStages: S, skipRatio: r });
        const costs = costsFor(S, seed);
        const res = planPath({ rules, costs, forbidden: new Set(), required: new Set(), inOrder: false, reservations: [], tieBreak: new Array(S).fill(0), maxExpansions: 100000 });
        expect(res).not.toBeNull();
        expect(checkPath(res!.order, rules)).toBeNull();
        const own = simulateIteration([res!.order], S, costs).makespanMs;
        expect(res!.costMs).toBeCloseTo(own, 9);
        const bestBrute = Math.min(...allLegalOrders(rules).map((o) => simulateIteration([o], S, costs).makespanMs));
        expect(res!.costMs).toBeCloseTo(bestBrute, 9);
      }),
      { numRuns: 150 },
    );
  });

  it('honours forbidden and required stages and waits for a reserved stage', () => {
    const S = 6;
    const costs: StageCosts = { forwardMs: [1, 1, 1, 1, 1, 1], backwardMs: [2, 2, 2, 2, 2, 2], linkMs: Array.from({ length: S }, () => new Array(S).fill(0)) };
    const rules = skipRules({ nStages: S, skipRatio: 0.34 }); // visit 4
    const q = { rules, costs, inOrder: true, tieBreak: [0, 0, 0, 0, 0, 0], maxExpansions: 10000 };
    const a = planPath({ ...q, forbidden: new Set([1, 2]), required: new Set<number>(), reservations: [] })!;
    expect(a.order).toEqual([0, 3, 4, 5]);
    const b = planPath({ ...q, forbidden: new Set<number>(), required: new Set([4]), reservations: [] })!;
    expect(b.order).toContain(4);
    // Stage 1 and 2 held from 1 to 50: the path goes through 3 and 4 instead.
    const busy = [[], [{ start: 1, end: 50 }], [{ start: 1, end: 50 }], [], [], []];
    expect(planPath({ ...q, forbidden: new Set<number>(), required: new Set<number>(), reservations: busy })!.order).toEqual([0, 3, 4, 5]);
  });
});

describe('iteration time model', () => {
  it('matches a hand computation: 2 stages, 2 microbatches, one link', () => {
    // Forward 10 ms, backward 20 ms, link 5 ms, full path [0,1] (embedding merged with stage 0's blocks).
    const costs: StageCosts = { forwardMs: [10, 10], backwardMs: [20, 20], linkMs: [[0, 5], [5, 0]] };
    const t = simulateIteration([fullOrder(2), fullOrder(2)], 2, costs);
    // mb0: F0 0-10, F1 15-25, B1 25-45, B0 50-70. mb1: F0 10-20, F1 waits for stage 1 (B1 of mb0 ends 45, then
    // mb1's F1 was ready at 25 but stage 1 ran mb0's B1 from 25): F1 45-55, B1 55-75, B0 80-100.
    expect(t.finishMs).toEqual([70, 100]);
    expect(t.makespanMs).toBe(100);
    expect(t.busyMs).toEqual([60, 60]);
  });

  it('an embedding-only or head-only hop costs EDGE_HOP_FRACTION of the stage', () => {
    const costs: StageCosts = { forwardMs: [8, 8], backwardMs: [16, 16], linkMs: [[0, 0], [0, 0]] };
    const t = simulateIteration([[1, 0]], 2, costs); // [0: embed] [1: blocks] [0: blocks] [1: head]
    expect(t.makespanMs).toBe(2 * 8 + 2 * 8 * EDGE_HOP_FRACTION + 2 * 16 + 2 * 16 * EDGE_HOP_FRACTION);
  });

  it('rejects bad measurements with a clear error', () => {
    expect(() => simulateIteration([[0, 1]], 2, { forwardMs: [1, Number.NaN], backwardMs: [1, 1], linkMs: [[0, 0], [0, 0]] })).toThrow(/forwardMs/);
    expect(() => simulateIteration([[0, 1]], 2, { forwardMs: [1, 1], backwardMs: [1], linkMs: [[0, 0], [0, 0]] })).toThrow(/backwardMs/);
    expect(() => simulateIteration([[0, 1]], 2, { forwardMs: [1, 1], backwardMs: [1, 1], linkMs: [[0, -1], [0, 0]] })).toThrow(/linkMs/);
  });
});
