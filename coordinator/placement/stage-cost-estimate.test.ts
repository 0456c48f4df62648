import { describe, expect, it } from 'vitest';
import { stageCostFactors, type TabStageTime } from './stage-cost-estimate.js';

const prior = [1, 1, 1, 1];
const ratio = (c: number[], a: number, b: number) => c[a]! / c[b]!;

describe('stageCostFactors', () => {
  it('before any tab served two stages, puts half of an edge tab\'s excess over the typical tab on the stage', () => {
    const obs: TabStageTime[] = [
      { tab: 'a', stage: 0, ms: 320 },
      { tab: 'b', stage: 1, ms: 40 },
      { tab: 'c', stage: 2, ms: 160 },
      { tab: 'd', stage: 3, ms: 96 },
    ];
    // Typical tab: the median of 40 and 160 per unit of prior cost = sqrt(40 x 160) = 80 (in logs).
    // Stage 0: 320 / 80 = 4x, half of it in logs: 2x. Stage 3 (prior 1.2): 96 / (1.2 x 80) = 1x, stays.
    const c = stageCostFactors(obs, [1, 1, 1, 1.2], [0, 3]);
    expect(ratio(c, 0, 1)).toBeCloseTo(2, 6);
    expect(ratio(c, 3, 2)).toBeCloseTo(1.2, 6);
    expect(ratio(c, 2, 1)).toBe(1);
  });

  it('keeps the prior where no fixed stage or no tab on the stage was measured', () => {
    expect(stageCostFactors([{ tab: 'a', stage: 0, ms: 300 }], [1, 1, 1, 1.2], [0, 3])).toEqual([1, 1, 1, 1.2].map((x) => Math.exp(Math.log(x))));
    const c = stageCostFactors([{ tab: 'b', stage: 1, ms: 40 }], [1, 1, 1, 1.2], [0, 3]);
    expect(ratio(c, 0, 1)).toBeCloseTo(1, 6);
    expect(ratio(c, 3, 1)).toBeCloseTo(1.2, 6);
  });

  it('once a tab served an edge and a middle stage, the split gives way to what it measured', () => {
    // Stage 0 costs 1.4x for every tab; tab a served stage 0 and then stage 1.
    const obs: TabStageTime[] = [
      { tab: 'a', stage: 0, ms: 140 },
      { tab: 'a', stage: 1, ms: 100 },
      { tab: 'b', stage: 0, ms: 70 },
      { tab: 'c', stage: 2, ms: 50 },
    ];
    const c = stageCostFactors(obs, prior, [0, 3]);
    // Fixed point by hand (stage 0 is linked, so its prior stays 1): b's factor takes all of stage
    // 0's error, a's half, so c0 (w + 2) = ln 1.4 / 2 + c0 (1 + 1/2) in logs: c0 = ln 1.4 / (1 + 2w)
    // = 1.324x with w = 0.1 (the unlinked split would have given 1.18x).
    expect(ratio(c, 0, 1)).toBeCloseTo(Math.exp(Math.log(1.4) / 1.2), 6);
  });

  it('learns an edge stage that costs more than its parameters say, from two tabs that traded stages', () => {
    // Stage 0 costs 2.5x a middle stage's task for every tab; tabs a (x3) and b (x1) traded 0 and 1.
    const f = { a: 3, b: 1, c: 1.5 };
    const t = (tab: keyof typeof f, stage: number) => ({ tab, stage, ms: 40 * f[tab] * (stage === 0 ? 2.5 : 1) });
    const c = stageCostFactors([t('a', 0), t('b', 1), t('a', 1), t('b', 0), t('c', 2)], prior, [0, 3]);
    // Fixed point by hand: each tab's factor takes half of stage 0's error, so c0 = (c0* + c0) / (w + 2)
    // in logs, c0 = ln 2.5 / (1 + w) with the prior weight w = 0.1: 2.30. The intermediates stay
    // equal (same blocks), stage 3 at its prior.
    expect(ratio(c, 0, 1)).toBeCloseTo(Math.exp(Math.log(2.5) / 1.1), 6);
    expect(ratio(c, 2, 1)).toBe(1);
    expect(c[3]).toBeCloseTo(1, 6);
  });

  it('ignores unusable observations', () => {
    const c = stageCostFactors([{ tab: 'a', stage: 9, ms: 5 }, { tab: 'a', stage: 0, ms: NaN }, { tab: 'b', stage: 1, ms: -1 }], prior, [0, 3]);
    expect(c).toEqual([1, 1, 1, 1]);
  });
});
