import { describe, it, expect } from 'vitest';
import { firstReached, iterationsLost, lossAt } from './setback.js';

// A falling curve with an evaluation (iteration 6) luckier than the next one (iteration 8).
const base = [
  { iteration: 0, loss: 5 },
  { iteration: 2, loss: 4 },
  { iteration: 4, loss: 3.5 },
  { iteration: 6, loss: 3.0 },
  { iteration: 8, loss: 3.1 },
  { iteration: 10, loss: 2.8 },
];

describe('iterations lost', () => {
  it('the base itself (an exact restore) loses nothing, even where its curve is noisy', () => {
    for (const p of base) expect(iterationsLost(base, p.iteration, p.loss)).toMatchObject({ iterations: 0, gap: 0 });
  });

  it('a worse run is as far behind as the base curve says, interpolated', () => {
    // At 10 the base has 2.8 (reached at 10); 3.5 was reached at 4: 6 iterations lost.
    expect(iterationsLost(base, 10, 3.5)).toMatchObject({ iterations: 6, capped: false });
    // 3.75 lies halfway between iterations 2 (4.0) and 4 (3.5).
    expect(firstReached(base, 3.75)).toBeCloseTo(3, 12);
    expect(iterationsLost(base, 10, 3.75).iterations).toBeCloseTo(7, 12);
    // At 8 the base's 3.1 was first reached at 5.6 (on the running minimum), 3.5 at 4.
    expect(iterationsLost(base, 8, 3.5).iterations).toBeCloseTo(1.6, 9);
  });

  it('a better run loses nothing and its gap is negative; worse than the start is capped', () => {
    expect(iterationsLost(base, 8, 3.0)).toMatchObject({ iterations: 0 });
    expect(iterationsLost(base, 8, 3.0).gap).toBeLessThan(0);
    expect(iterationsLost(base, 10, 6)).toMatchObject({ iterations: 10, capped: true });
    expect(iterationsLost(base, 10, NaN)).toMatchObject({ capped: true });
  });

  it('interpolates the base between evaluations and refuses points past its end', () => {
    expect(lossAt(base, 5)).toBeCloseTo(3.25, 12);
    expect(() => lossAt(base, 11)).toThrow(RangeError);
  });
});
