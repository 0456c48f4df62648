import { describe, expect, it } from 'vitest';
import { measuredStageCosts } from './skip-costs.js';

describe('measured stage costs for the collision-aware skip schedule', () => {
  it('takes group task times as forward, twice as backward, and half the mean hop round trip as a link', () => {
    const c = measuredStageCosts([
      { taskMs: 10, hopMs: 4 },
      { taskMs: 30, hopMs: 8 },
      { taskMs: 20, hopMs: 0 },
    ]);
    expect(c.forwardMs).toEqual([10, 30, 20]);
    expect(c.backwardMs).toEqual([20, 60, 40]);
    expect(c.linkMs).toEqual([
      [0, 3, 1],
      [3, 0, 2],
      [1, 2, 0],
    ]);
  });

  it('counts an unmeasured or unserved stage as the median of the measured ones (1 ms, no link when none is)', () => {
    const c = measuredStageCosts([
      { taskMs: 10, hopMs: 2 },
      { taskMs: null, hopMs: null },
      { taskMs: Infinity, hopMs: null },
      { taskMs: 30, hopMs: 6 },
    ]);
    expect(c.forwardMs).toEqual([10, 20, 20, 30]);
    expect(c.linkMs[1]![2]).toBe(2);
    const none = measuredStageCosts([
      { taskMs: null, hopMs: null },
      { taskMs: null, hopMs: null },
    ]);
    expect(none.forwardMs).toEqual([1, 1]);
    expect(none.linkMs).toEqual([
      [0, 0],
      [0, 0],
    ]);
  });
});
