import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  applyCheckFreeSwap,
  checkFreePairs,
  checkFreeRequired,
  checkPath,
  checkSchedule,
  coverage,
  evalOrder,
  fullOrder,
  pathShape,
  skipCount,
  skipRules,
  type PathRule,
  type SkipRules,
} from './skip-paths';
import { blockOrder, hopsFromBlockOrder, forwardPath } from './paths';

/** The rules written out independently of checkPath: prefix maxima, counted swaps and jumps. */
function brokenRules(order: number[], r: SkipRules): Set<PathRule> {
  const S = r.nStages;
  const broken = new Set<PathRule>();
  if (order.some((s) => !Number.isInteger(s) || s < 0 || s >= S)) broken.add('stages');
  if (!order.includes(0) || !order.includes(S - 1)) broken.add('ends');
  if (order.some((s, i) => order.indexOf(s) !== i)) broken.add('once');
  if (order.length !== r.visit) broken.add('length');
  if (order.some((s) => r.vacant.includes(s))) broken.add('vacant');
  const prefixMax = order.map((_, i) => Math.max(0, ...order.slice(0, i)));
  const swapsAt = order.map((s, i) => s < prefixMax[i]!);
  if (order.some((s, i) => swapsAt[i] && prefixMax[i]! - s > r.maxBehind)) broken.add('behind');
  if (swapsAt.filter(Boolean).length > r.maxSwaps) broken.add('swaps');
  if (order.some((s, i) => !swapsAt[i] && s - prefixMax[i]! > r.maxJump)) broken.add('jump');
  return broken;
}

const ruleOrder: PathRule[] = ['stages', 'ends', 'once', 'length', 'vacant', 'behind', 'swaps', 'jump'];

const arbSetup = fc
  .record({ S: fc.integer({ min: 2, max: 12 }), r: fc.double({ min: 0, max: 0.9, noNaN: true }), vacantBits: fc.integer({ min: 0, max: 1023 }) })
  .map(({ S, r, vacantBits }) => {
    const vacant = Array.from({ length: Math.max(0, S - 2) }, (_, i) => i + 1).filter((s) => (vacantBits >> (s - 1)) & 1 && s % 2 === 1);
    return { S, r, vacant, rules: skipRules({ nStages: S, skipRatio: r, vacant }) };
  });
const arbRules = arbSetup.map((x) => x.rules);

/** A legal in-order path under `r`, drawn from `pick` bits (greedy from the end so jumps fit). */
function legalPath(r: SkipRules, bits: number): number[] {
  const open = fullOrder(r.nStages).filter((s) => s > 0 && s < r.nStages - 1 && !r.vacant.includes(s));
  for (let attempt = 0; attempt < 1 << Math.min(open.length, 12); attempt++) {
    const chosen = open.filter((_, i) => ((bits + attempt * 2654435761) >>> i) & 1);
    const order = r.nStages === 1 ? [0] : [0, ...chosen.slice(0, r.visit - 2), r.nStages - 1];
    if (!checkPath(order, r)) return order;
  }
  // Exhaustive fallback: every subset.
  for (let m = 0; m < 1 << open.length; m++) {
    const order = [0, ...open.filter((_, i) => (m >> i) & 1), r.nStages - 1];
    if (!checkPath(order, r)) return order;
  }
  throw new Error('no legal path');
}

describe('skip path rules', () => {
  it('checkPath names the first rule the independent statement of the rules says is broken (any order, any S >= 2)', () => {
    fc.assert(
      fc.property(arbRules, fc.array(fc.integer({ min: -1, max: 12 }), { maxLength: 12 }), (r, order) => {
        const v = checkPath(order, r);
        const broken = brokenRules(order, r);
        if (broken.size === 0) return v === null;
        // behind / swaps / jump are judged along the path, so the first one met is named.
        const first = ruleOrder.find((x) => broken.has(x))!;
        if (['behind', 'swaps', 'jump'].includes(first)) return v !== null && broken.has(v.rule);
        return v?.rule === first;
      }),
      { numRuns: 3000 },
    );
  });

  it('checkPath agrees with the independent statement on near-legal paths (legal ones with a few adjacent stages transposed)', () => {
    fc.assert(
      fc.property(arbRules, fc.integer({ min: 0, max: 4095 }), fc.array(fc.nat(), { maxLength: 4 }), (r, bits, moves) => {
        const order = legalPath(r, bits);
        for (const m of moves) {
          if (order.length < 2) break;
          const i = m % (order.length - 1);
          [order[i], order[i + 1]] = [order[i + 1]!, order[i]!];
        }
        const broken = brokenRules(order, r);
        const v = checkPath(order, r);
        return broken.size === 0 ? v === null : v !== null && broken.has(v.rule);
      }),
      { numRuns: 2000 },
    );
  });

  it('names each rule on a hand-made path', () => {
    const r = skipRules({ nStages: 8, skipRatio: 0.25 }); // visit 6, jump 4
    expect(r.visit).toBe(6);
    expect(checkPath([0, 1, 2, 3, 4, 7], r)).toBeNull();
    const cases: [number[], PathRule][] = [
      [[0, 1, 2, 3, 8, 7], 'stages'],
      [[1, 2, 3, 4, 5, 7], 'ends'],
      [[0, 1, 1, 3, 4, 7], 'once'],
      [[0, 1, 2, 3, 4, 5, 7], 'length'],
      [[0, 3, 4, 2, 1, 7], 'behind'],
      [[1, 0, 3, 2, 7, 6], 'swaps'],
    ];
    for (const [order, rule] of cases) expect(checkPath(order, r)?.rule, order.join(',')).toBe(rule);
    const jumpy = { ...r, maxJump: 2 };
    expect(checkPath([0, 1, 2, 5, 6, 7], jumpy)?.rule).toBe('jump');
    expect(checkPath([0, 1, 2, 3, 4, 7], { ...r, vacant: [3] })?.rule).toBe('vacant');
    expect(checkPath([0, 1, 2, 3, 4, 7], r)).toBeNull();
    expect(checkPath([1, 0, 2, 3, 7, 6], r)).toBeNull(); // CheckFree+'s two swaps
    expect(checkPath([0, 2, 1, 4, 3, 7], r)).toBeNull(); // two swaps of its own
  });

  it('skipRules: a legal path always exists, its length is S minus the skipped or vacant stages, ratio 0 is the full pipeline', () => {
    fc.assert(
      fc.property(arbSetup, fc.integer({ min: 0, max: 4095 }), ({ S, r: ratio, vacant, rules: r }, bits) => {
        expect(checkPath(legalPath(r, bits), r)).toBeNull();
        // Every open intermediate lies on some legal in-order path (so every stage can take its share).
        for (let st = 1; st < S - 1; st++) {
          if (vacant.includes(st)) continue;
          const open = fullOrder(S).filter((x) => x > 0 && x < S - 1 && x !== st && !vacant.includes(x));
          let found = false;
          for (let m = 0; m < 1 << open.length && !found; m++) {
            const mid = open.filter((_, i) => (m >> i) & 1);
            if (mid.length !== r.visit - 3) continue;
            found = !checkPath([0, ...[...mid, st].sort((a, b) => a - b), S - 1], r);
          }
          expect(found, `stage ${st}`).toBe(true);
        }
        expect(r.visit).toBe(S - Math.max(skipCount(ratio, S), vacant.length));
        expect(r.maxJump).toBeGreaterThanOrEqual(4);
      }),
    );
    for (let S = 1; S <= 12; S++) {
      const r = skipRules({ nStages: S, skipRatio: 0 });
      expect(r.visit).toBe(S);
      expect(checkPath(fullOrder(S), r)).toBeNull();
    }
    expect(skipCount(0.33, 8)).toBe(3);
    expect(skipCount(0.33, 6)).toBe(2);
    expect(skipCount(0.9, 8)).toBe(5); // at least one intermediate left
    expect(skipCount(0.5, 3)).toBe(0);
    expect(skipRules({ nStages: 8, skipRatio: 0, vacant: [3] }).visit).toBe(7);
    expect(skipRules({ nStages: 8, skipRatio: 0.5, vacant: [2, 3, 4, 5] }).maxJump).toBe(6); // least 5, +1 for CheckFree+'s last swap
    expect(skipRules({ nStages: 7, skipRatio: 0.6 }).maxJump).toBe(6); // visit 3: 0,1,6 must be legal
    expect(() => skipRules({ nStages: 8, skipRatio: 0.3, vacant: [0] })).toThrow(/intermediate/);
    expect(() => skipRules({ nStages: 8, skipRatio: 0.3, vacant: [7] })).toThrow(/intermediate/);
    expect(() => skipCount(1, 8)).toThrow(/skip ratio/);
    expect(() => skipCount(Number.NaN, 8)).toThrow(/skip ratio/);
  });

  it('pathShape counts swaps, how far behind and the largest jump', () => {
    expect(pathShape([1, 0, 2, 3, 7, 6])).toEqual({ swaps: 2, furthestBehind: 1, largestJump: 4 });
    expect(pathShape(fullOrder(5))).toEqual({ swaps: 0, furthestBehind: 0, largestJump: 1 });
  });

  it('CheckFree+ on skip paths: with nothing skipped it is exactly paths.ts blockOrder, for every S and counter', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 1000 }), fc.boolean(), (S, counter, swap) => {
        const r = skipRules({ nStages: S, skipRatio: 0 });
        const pairs = checkFreePairs(counter, r, swap);
        expect(applyCheckFreeSwap(fullOrder(S), pairs, S)).toEqual(blockOrder(counter, S, swap));
        expect(hopsFromBlockOrder(applyCheckFreeSwap(fullOrder(S), pairs, S), S)).toEqual(forwardPath(counter, S, swap));
      }),
    );
  });

  it('CheckFree+ on skip paths: partners are never vacant, even counters swap nothing, a swap keeps the stages and goes one behind', () => {
    fc.assert(
      fc.property(arbRules, fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 4095 }), (r, counter, bits) => {
        const pairs = checkFreePairs(counter, r, true);
        const req = checkFreeRequired(pairs, r.nStages);
        for (const s of req) expect(r.vacant).not.toContain(s);
        if (counter % 2 === 0) expect(pairs).toEqual({ first: false, last: false });
        // Build a path holding the partners: 0, partners and legal fill.
        const base = legalPath(r, bits);
        if (!req.every((s) => base.includes(s))) return;
        const swapped = applyCheckFreeSwap(base, pairs, r.nStages);
        expect([...swapped].sort((a, b) => a - b)).toEqual([...base].sort((a, b) => a - b));
        const shape = pathShape(swapped);
        expect(shape.furthestBehind).toBeLessThanOrEqual(1);
        expect(shape.swaps).toBeLessThanOrEqual(2);
        if (pairs.first && base[1] === 1) expect(swapped.slice(0, 2)).toEqual([1, 0]);
      }),
    );
  });

  it('coverage: floor and cap bound the mean share; checkSchedule names cap, floor and count', () => {
    const r = skipRules({ nStages: 8, skipRatio: 0.33 }); // visit 5: 3 of 6 intermediates
    expect(coverage(r, 4)).toEqual({ floor: [4, 2, 2, 2, 2, 2, 2, 4], cap: [4, 2, 2, 2, 2, 2, 2, 4] });
    expect(coverage(r, 3)).toEqual({ floor: [3, 1, 1, 1, 1, 1, 1, 3], cap: [3, 2, 2, 2, 2, 2, 2, 3] });
    // 5 stages, 2 of 3 intermediates, 5 microbatches of which 3 must visit 1 and 3 (and have no room for 2).
    const r5 = skipRules({ nStages: 5, skipRatio: 0.2 });
    expect(coverage(r5, 5, [0, 3, 0, 3, 0], [5, 5, 2, 5, 5])).toEqual({ floor: [5, 4, 2, 4, 5], cap: [5, 4, 2, 4, 5] });
    const good = [
      [0, 1, 2, 3, 7],
      [0, 4, 5, 6, 7],
      [0, 1, 2, 3, 7],
      [0, 4, 5, 6, 7],
    ];
    expect(checkSchedule(good, r, 4)).toBeNull();
    expect(checkSchedule(good.slice(0, 3), r, 4)?.rule).toBe('count');
    expect(checkSchedule([good[0]!, good[0]!, good[0]!, good[1]!], r, 4)?.rule).toBe('cap');
    expect(checkSchedule([[0, 1, 2, 3, 7], [0, 1, 2, 4, 7], [0, 3, 4, 6, 7]], r, 3)?.rule).toBe('floor'); // stage 5 never runs
    expect(checkSchedule([[0, 1, 2, 3, 4, 7]], r, 1)?.rule).toBe('length');
  });

  it('coverage: the open stages\' floors and caps hold exactly the visits there are, at most one apart without demand, within demand and room', () => {
    fc.assert(
      fc.property(arbRules, fc.integer({ min: 1, max: 12 }), fc.array(fc.integer({ min: 0, max: 12 }), { minLength: 12, maxLength: 12 }), fc.boolean(), (r, M, d, withDemand) => {
        const S = r.nStages;
        const open = fullOrder(S).filter((s) => s > 0 && s < S - 1 && !r.vacant.includes(s));
        const demand = withDemand ? d.slice(0, S).map((x) => Math.min(x, M)) : undefined;
        const c = coverage(r, M, demand);
        const total = M * (r.visit - 2);
        const sum = (xs: number[]) => open.reduce((a, s) => a + xs[s]!, 0);
        if (open.length === 0) return;
        if (!demand || open.every((s) => demand[s]! <= Math.floor(total / open.length))) {
          expect(sum(c.floor)).toBeLessThanOrEqual(total);
          expect(sum(c.cap)).toBeGreaterThanOrEqual(total);
        }
        for (const s of open) {
          expect(c.floor[s]!).toBeLessThanOrEqual(c.cap[s]!);
          if (!demand) expect(c.cap[s]! - c.floor[s]!).toBeLessThanOrEqual(1);
          if (demand) expect(c.floor[s]!).toBeGreaterThanOrEqual(demand[s]!);
        }
        for (const v of r.vacant) expect(c.cap[v]).toBe(0);
      }),
    );
  });

  it('evalOrder: a sorted subset with both edge stages; clear errors otherwise', () => {
    expect(evalOrder([3, 0, 2, 2], 4)).toEqual([0, 2, 3]);
    expect(() => evalOrder([1, 2, 3], 4)).toThrow(/include stage 0 and stage 3/);
    expect(() => evalOrder([0, 5, 3], 4)).toThrow(/not a stage/);
  });
});
