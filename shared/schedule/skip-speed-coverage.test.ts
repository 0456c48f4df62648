import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { coverage, skipRules } from './skip-paths';
import { MIN_SHARE_OF_MEAN, speedCoverage } from './skip-speed-coverage';
import { collisionSchedule } from './skip-collision';
import { scheduleBounds } from './skip-request';
import { checkSchedule, stageCounts } from './skip-paths';

const rules = skipRules({ nStages: 8, skipRatio: 0.33 });
const M = 8;
const inner = (c: { floor: number[]; cap: number[] }, k: 'floor' | 'cap') => c[k].slice(1, 7).reduce((a, b) => a + b, 0);

describe('speedCoverage', () => {
  it('equal speeds give the equal shares of coverage()', () => {
    expect(speedCoverage(rules, M, new Array(8).fill(1 / 50))).toEqual(coverage(rules, M));
  });

  it('a slow intermediate gets fewer visits than a fast one, never under half the mean share', () => {
    const speed = [90, 40, 82, 118, 117, 62, 89, 98].map((ms) => 1 / ms);
    const c = speedCoverage(rules, M, speed);
    const total = M * (rules.visit - 2);
    expect(inner(c, 'floor')).toBeLessThanOrEqual(total);
    expect(inner(c, 'cap')).toBeGreaterThanOrEqual(total);
    expect(c.cap[3]!).toBeLessThan(c.floor[1]!); // 118 ms vs 40 ms
    const least = Math.floor((MIN_SHARE_OF_MEAN * total) / 6);
    for (let s = 1; s < 7; s++) expect(c.floor[s]!).toBeGreaterThanOrEqual(least);
    expect([c.floor[0], c.cap[0], c.floor[7], c.cap[7]]).toEqual([M, M, M, M]);
  });

  it('property: bounds always admit the visits, hold the demand clamps, leave vacant stages at 0', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 1, max: 500, noNaN: true }), { minLength: 8, maxLength: 8 }),
        fc.integer({ min: 1, max: 12 }),
        fc.subarray([2, 4, 5], { maxLength: 1 }),
        (ms, m, vacant) => {
          const r = skipRules({ nStages: 8, skipRatio: 0.33, vacant });
          const demand = [0, 1, 0, 0, 0, 0, 0, 0];
          const c = speedCoverage(r, m, ms.map((x) => 1 / x), demand);
          const total = m * (r.visit - 2);
          const open = [1, 2, 3, 4, 5, 6].filter((s) => !vacant.includes(s));
          const sf = open.reduce((a, s) => a + c.floor[s]!, 0);
          const sc = open.reduce((a, s) => a + c.cap[s]!, 0);
          expect(sf).toBeLessThanOrEqual(total);
          expect(sc).toBeGreaterThanOrEqual(total);
          for (const s of open) {
            expect(c.floor[s]!).toBeLessThanOrEqual(c.cap[s]!);
            expect(c.cap[s]!).toBeLessThanOrEqual(m);
          }
          expect(c.floor[1]!).toBeGreaterThanOrEqual(1);
          for (const s of vacant) expect(c.cap[s]).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('the collision-aware schedule meets the speed bounds and unloads the slow stage', () => {
    const ms = [90, 40, 82, 118, 117, 62, 89, 98];
    const costs = { forwardMs: ms, backwardMs: ms.map((f) => 2 * f), linkMs: ms.map(() => ms.map(() => 1)) };
    const req = { rules, microbatches: M, iteration: 3, swap: false, seed: 1, speed: ms.map((f) => 1 / f) };
    const res = collisionSchedule(req, costs);
    expect(res.fallback).toBe(false);
    expect(checkSchedule(res.orders, rules, M, scheduleBounds(req))).toBeNull();
    const counts = stageCounts(res.orders, 8);
    expect(counts[3]!).toBeLessThan(counts[1]!);
  });
});
