import { describe, expect, it } from 'vitest';
import { stageCostFactors, type TabStageTime } from './stage-cost-estimate.js';

const prior = [1, 1, 1, 1];
const ratio = (c: number[], a: number, b: number) => c[a]! / c[b]!;

describe('stageCostFactors', () => {
  it('keeps the prior where no tab served two stages', () => {
    const obs: TabStageTime[] = [
      { tab: 'a', stage: 0, ms: 300 },
      { tab: 'b', stage: 1, ms: 40 },
      { tab: 'c', stage: 2, ms: 120 },
    ];
    const c = stageCostFactors(obs, [1, 1, 1, 1.2], [0, 3]);
    expect(ratio(c, 0, 1)).toBeCloseTo(1, 6);
    expect(ratio(c, 3, 2)).toBeCloseTo(1.2, 6);
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
