import { describe, it, expect } from 'vitest';
import { formatLinkUse, linkUse } from './link-use.js';

describe('linkUse', () => {
  it('is the bytes delivered in the window over the link capacity, per direction, by stage', () => {
    const link = { upMbps: 50, downMbps: 25, latencyMs: 20 };
    // 10 s at 50 Mbit/s = 62.5 MB up; at 25 Mbit/s = 31.25 MB down.
    const before = [
      { name: 'a', stage: 1, up: 1_000, down: 0 },
      { name: 'b', stage: 0, up: 0, down: 500 },
    ];
    const after = [
      { name: 'a', stage: 1, up: 1_000 + 31_250_000, down: 31_250_000 },
      { name: 'b', stage: 0, up: 6_250_000, down: 500 },
      { name: 'late', stage: 0, up: 9, down: 9 },
    ];
    const u = linkUse(before, after, 10, link);
    expect(u.map((x) => x.name)).toEqual(['b', 'a']);
    expect(u[0]!.up).toBeCloseTo(0.1, 12);
    expect(u[0]!.down).toBe(0);
    expect(u[1]!.up).toBeCloseTo(0.5, 12);
    expect(u[1]!.down).toBeCloseTo(1, 12);
    expect(formatLinkUse(u)).toBe('s0 10/0 | s1 50/100');
    expect(() => linkUse(before, after, 0, link)).toThrow(RangeError);
  });
});
