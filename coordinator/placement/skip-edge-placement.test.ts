import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { skipRules } from '../../shared/schedule/skip-paths.js';
import { lastStageMs, planEdgeSwap, skipStageLoads, stageBusyMs, type EdgeSwapInput } from './skip-edge-placement.js';
import { stageCostFactors } from './stage-cost-estimate.js';

const S = 8;
const M = 8;
const rules = skipRules({ nStages: S, skipRatio: 0.33 });
const flat = new Array<number>(S).fill(1);

function input(tabMs: (number | null)[], o: Partial<EdgeSwapInput> = {}): EdgeSwapInput {
  return { rules, microbatches: M, tabMs, work: flat, followSpeed: false, ...o };
}

describe('skipStageLoads', () => {
  it('edges carry every microbatch, intermediates the mean share of M x (visit - 2)', () => {
    // 8 stages at 0.33: round(2.64) = 3 skipped, visit 5, 3 intermediates per path over 6 stages.
    expect(rules.visit).toBe(5);
    expect(skipStageLoads(rules, M)).toEqual([8, 4, 4, 4, 4, 4, 4, 8]);
  });

  it('with speeds, a slow intermediate gets fewer visits (the collision-aware caps)', () => {
    const loads = skipStageLoads(rules, M, [10, 100, 10, 10, 10, 10, 10, 10]);
    expect(loads[0]).toBe(M);
    expect(loads[7]).toBe(M);
    expect(loads[1]).toBeLessThan(4);
  });
});

describe('skipStageLoads on 4 stages', () => {
  it('gives the spare visit to the faster intermediate, as the collision-aware schedule does', () => {
    // r = 0.25: one intermediate per path, 4 visits over stages 1 and 2; the slow stage keeps its floor.
    const r = skipRules({ nStages: 4, skipRatio: 0.25 });
    expect(skipStageLoads(r, 4)).toEqual([4, 2, 2, 4]);
    expect(skipStageLoads(r, 4, [111, 18, 38, 34])).toEqual([4, 3, 1, 4]);
    expect(skipStageLoads(r, 4, [18, 111, 38, 34])).toEqual([4, 1, 3, 4]);
  });
});

describe('stageBusyMs', () => {
  it('is load x ms per task, NaN where unknown, 0 where unloaded', () => {
    expect(stageBusyMs([8, 4, 0], [10, null, null])).toEqual([80, NaN, 0]);
  });
});

describe('planEdgeSwap', () => {
  it('puts the fast intermediate tab on a slow edge (hand computed)', () => {
    // Stage 7's tab takes 100 ms: 8 x 100 = 800 ms per iteration; the fastest intermediate (stage 3,
    // 40 ms) there gives 8 x 40 = 320, and the slow tab on stage 3: 4 x 100 = 400. Busiest 800 -> 400.
    const p = planEdgeSwap(input([50, 60, 70, 40, 60, 70, 60, 100]));
    expect(p).toEqual({ edge: 7, intermediate: 3, beforeMs: 800, afterMs: 400 });
  });

  it('when another stage stays busiest, takes the swap with the least total busy time', () => {
    // Stage 7 (8 x 60 = 480) stays busiest whichever intermediate takes stage 0 (8 x 100 = 800 now);
    // the fastest one (stage 2, 20 ms) gives the least total.
    const p = planEdgeSwap(input([100, 50, 20, 50, 50, 50, 50, 60]), 0.2);
    // Alone: 0 <- stage 2's tab (480, stage 7 busiest). A pair (one 50-tab to an edge, the 20-tab to
    // the other) gives 400 and is preferred; either way the 20-tab goes to an edge.
    expect(p!.afterMs).toBe(400);
    expect([p!.intermediate, p!.then?.intermediate]).toContain(2);
    // With a fast stage 7 one swap does it: 0 <- 20 (160), the 100-tab on stage 2 runs 4 x 100 = 400.
    expect(planEdgeSwap(input([100, 50, 20, 50, 50, 50, 50, 40]))).toEqual({ edge: 0, intermediate: 2, beforeMs: 800, afterMs: 400 });
  });

  it('when both edges are slow, plans a swap per edge and makes the one that helps more first', () => {
    // bench:skip-swarm seed 1 (flat work): stage 0 at 90 (720 per iteration) and 7 at 98 (784). One
    // swap lifts only the other edge to the top (784 -> 720, 8 %); both: 7 <- 40 and 0 <- 62.
    const ms = [90, 40, 82, 118, 117, 62, 89, 98];
    const p = planEdgeSwap(input(ms), 0.2)!;
    // The 40 and 62 tabs on the two edges, either way round: 8 x 62 = 496 busiest.
    expect(p).toMatchObject({ beforeMs: 784, afterMs: 496 });
    expect(new Set([p.edge, p.then!.edge])).toEqual(new Set([0, 7]));
    expect(new Set([p.intermediate, p.then!.intermediate])).toEqual(new Set([1, 5]));
    // After the first swap the second is worth it on its own.
    const after = [90, 98, 82, 118, 117, 62, 89, 40];
    expect(planEdgeSwap(input(after))).toMatchObject({ edge: 0, intermediate: 5, beforeMs: 720 });
    expect(planEdgeSwap(input(after))?.then).toBeUndefined();
  });

  it('leaves fast edges alone', () => {
    expect(planEdgeSwap(input([40, 100, 90, 80, 70, 60, 50, 40]))).toBeNull();
  });

  it('needs the gain: a small improvement is no reason to move two states', () => {
    // Busiest 8 x 50 = 400; the best swap (stage 3 at 45 ms) gives max(8 x 45, 4 x 50) = 360: 10 %.
    expect(planEdgeSwap(input([40, 60, 60, 45, 60, 60, 60, 50]))).toBeNull();
    expect(planEdgeSwap(input([40, 60, 60, 45, 60, 60, 60, 50]), 0.05)).toMatchObject({ edge: 7, intermediate: 3 });
  });

  it('does nothing on full paths, with an unmeasured open stage, or with bad work figures', () => {
    const slowEdge = [100, 40, 40, 40, 40, 40, 40, 40];
    expect(planEdgeSwap(input(slowEdge))).not.toBeNull();
    expect(planEdgeSwap(input(slowEdge, { rules: skipRules({ nStages: S, skipRatio: 0 }) }))).toBeNull();
    expect(planEdgeSwap(input([100, 40, null, 40, 40, 40, 40, 40]))).toBeNull();
    expect(planEdgeSwap(input(slowEdge, { work: [1, 1, 1, 0, 1, 1, 1, 1] }))).toBeNull();
    expect(planEdgeSwap(input([100, 40, 40, 40, NaN, 40, 40, 40]))).toBeNull();
  });

  it('never swaps with a vacant stage (its tab time does not count)', () => {
    const r = skipRules({ nStages: S, skipRatio: 0.33, vacant: [3] });
    const p = planEdgeSwap(input([100, 60, 60, null, 60, 60, 60, 60], { rules: r }));
    expect(p?.intermediate).not.toBe(3);
    expect(p?.edge).toBe(0);
  });

  it('scales a tab by the work of the stage it moves to', () => {
    // The head stage's task is 3x the work: the fast tab there takes 3 x 40 = 120 ms, 8 x 120 = 960
    // > 800 today; the swap would make it worse, so none is planned.
    const work = [1, 1, 1, 1, 1, 1, 1, 3];
    expect(planEdgeSwap(input([50, 60, 70, 40, 60, 70, 60, 100], { work }))).toBeNull();
  });

  it('with the collision-aware caps the moved slow tab gets fewer intermediate visits', () => {
    const p = planEdgeSwap(input([50, 60, 70, 40, 60, 70, 60, 100], { followSpeed: true }));
    expect(p?.edge).toBe(7);
    expect(p!.afterMs).toBeLessThanOrEqual(400);
  });

  it('property: a planned swap lowers the busiest stage by the gain', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 10, max: 300 }), { minLength: S, maxLength: S }), fc.boolean(), (ms, followSpeed) => {
        const p = planEdgeSwap(input(ms, { followSpeed }));
        if (!p) return;
        expect(p.afterMs).toBeLessThanOrEqual(0.8 * p.beforeMs + 1e-9);
        expect([0, S - 1]).toContain(p.edge);
        expect(p.intermediate).toBeGreaterThan(0);
        expect(p.intermediate).toBeLessThan(S - 1);
        // With equal shares the swapped tab is faster than the edge's (else the edge only got slower, or
        // the busiest intermediate stayed). With speed-following caps a fast edge tab may also go to the
        // intermediates, where it unloads the slow ones (fast-check found [10,244,276,290,10,62,230,10]).
        if (!followSpeed) expect(ms[p.intermediate]!).toBeLessThan(ms[p.edge]!);
      }),
    );
  });
});

describe('planEdgeSwap with the stage costs learned before any swap (stage-cost-estimate.ts)', () => {
  // What the swapper does: each stage's tab measured on its own stage only, work from those observations.
  const decide = (tabMs: number[], followSpeed: boolean) => {
    const work = stageCostFactors(tabMs.map((ms, s) => ({ tab: `t${s}`, stage: s, ms })), flat, [0, S - 1]);
    return planEdgeSwap(input(tabMs, { work, followSpeed }));
  };

  for (const followSpeed of [false, true]) {
    it(`equal tabs whose edge stages cost 1.4x make no swap (followSpeed ${followSpeed})`, () => {
      const tabMs = [56, 40, 40, 40, 40, 40, 40, 56];
      expect(decide(tabMs, followSpeed)).toBeNull();
      // Taking the edges' parameters as their cost (the first decision before) swapped needlessly.
      expect(planEdgeSwap(input(tabMs, { followSpeed }))).not.toBeNull();
    });

    it(`a slow edge tab among equal tabs is still swapped out (followSpeed ${followSpeed})`, () => {
      const p = decide([80, 40, 40, 40, 40, 40, 40, 40], followSpeed);
      expect(p?.edge).toBe(0);
      expect(p!.afterMs).toBeLessThanOrEqual(0.8 * p!.beforeMs);
    });
  }

  it('unequal tabs (bench:skip-swarm seed 1) get the fast tabs on the edges', () => {
    // Paced volunteers take the same time on every stage: the two fastest (40 ms on stage 1, 62 ms on
    // stage 5) go to the edges, the faster on the last stage.
    const p = decide([90, 40, 82, 118, 117, 62, 89, 98], true);
    expect(p).toMatchObject({ edge: 7, intermediate: 1, then: { edge: 0, intermediate: 5 } });
    expect(p!.afterMs).toBeLessThanOrEqual(0.8 * p!.beforeMs);
  });
});

describe('the faster edge tab on the last stage', () => {
  it('lastStageMs: its load x time per task, plus stage 0 and the fastest path of intermediates (hand computed)', () => {
    // visit = 5: 3 intermediates per path, the fastest 82, 89, 90; 8 x 40 + 62 + 261 = 643.
    expect(lastStageMs(input([]), [62, 90, 82, 118, 117, 98, 89, 40])).toBe(643);
    expect(lastStageMs(input([]), [40, 90, 82, 118, 117, 98, 89, 62])).toBe(8 * 62 + 40 + 261);
  });

  it('of two plans that leave the same busiest stage, takes the one with the faster tab on stage S-1', () => {
    // Both edges 100 ms; 40 and 50 ms tabs on stages 2 and 4. Either pair leaves 8 x 50 = 400 ms busiest
    // (an edge; the moved 100 ms tabs run 4 x 100 = 400 as intermediates); the 40 ms tab goes to stage 7.
    const p = planEdgeSwap(input([100, 60, 40, 60, 50, 60, 60, 100]));
    const placed = [p!, ...(p!.then ? [p!.then] : [])].map((x) => ({ edge: x.edge, intermediate: x.intermediate }));
    expect(placed).toContainEqual({ edge: 7, intermediate: 2 });
    expect(placed).toContainEqual({ edge: 0, intermediate: 4 });
    expect(p!.afterMs).toBe(400);
  });
});
