import { describe, it, expect } from 'vitest';
import { LossWarmup, lossFallingFast } from './loss-warmup.js';

describe('warm-up while the loss falls fast', () => {
  it('is on until two windows are seen, while the windowed mean falls more than 5%, and off once it settles', () => {
    const rule = { window: 3, drop: 0.05, factor: 2 };
    expect(lossFallingFast([5, 4, 3], rule)).toBe(true);
    expect(lossFallingFast([6, 6, 6, 5, 5, 5], rule)).toBe(true); // 17% down
    expect(lossFallingFast([5, 5, 5, 4.9, 4.9, 4.9], rule)).toBe(false); // 2% down
    expect(lossFallingFast([5, 5, 5, 6, 6, 6], rule)).toBe(false); // rising
    expect(lossFallingFast([NaN, 5, 5, 5, 5, 5, 5], rule)).toBe(false);
    const w = new LossWarmup(rule);
    for (const l of [8, 7, 6, 5, 4.5, 4.2]) w.record(l);
    expect(w.factor()).toBe(2);
    for (const l of [4.1, 4.1, 4.1, 4.1, 4.1, 4.1]) w.record(l);
    expect(w.factor()).toBe(1);
  });
});
