import { describe, it, expect } from 'vitest';
import { AnswerTimes, BARRIER_DEADLINE, deadlineMs, quantile, type DeadlineRule } from './answer-times.js';
import { MIN_LINK_BYTES_PER_SEC } from '../tabs/ask-stage.js';

const rule: DeadlineRule = { factor: 5, floorMs: 5_000, coldMs: 30_000, minSamples: 5, window: 100 };

describe('adaptive answer deadlines', () => {
  it('quantile is the nearest rank', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(quantile(xs, 0.99)).toBe(99);
    expect(quantile(xs, 0.5)).toBe(50);
    expect(quantile([7], 0.99)).toBe(7);
    expect(quantile([], 0.99)).toBeNull();
  });

  it('is cold (capped by the configured timeout) before enough samples, then factor x p99 within [floor, ceiling]', () => {
    expect(deadlineMs([10, 10], rule, 120_000)).toBe(30_000);
    expect(deadlineMs([10, 10], rule, 20_000)).toBe(20_000);
    // Tiny model: answers of ~10 ms -> the floor.
    expect(deadlineMs([10, 12, 9, 11, 10, 13], rule, 120_000)).toBe(5_000);
    // Large model: answers of ~4 s, two of 6 s (the p99 of 100) -> 5 x 6 s.
    const big = [...Array.from({ length: 98 }, () => 4_000), 6_000, 6_000];
    expect(deadlineMs(big, rule, 120_000)).toBe(30_000);
    expect(deadlineMs(big, rule, 25_000)).toBe(25_000);
  });

  it('a moving bundle adds its time on the slowest link allowed', () => {
    const xs = [10, 10, 10, 10, 10];
    expect(deadlineMs(xs, rule, 120_000, MIN_LINK_BYTES_PER_SEC * 8)).toBe(5_000 + 8_000);
  });

  it("a tab's deadline comes from the other tabs' answers, so it cannot raise its own", () => {
    const times = new AnswerTimes();
    const honest = [{}, {}, {}];
    const slow = {};
    for (let i = 0; i < 10; i++) for (const h of honest) times.record('q', 20, h);
    // The slow tab answers just inside its deadline, again and again.
    for (let i = 0; i < 50; i++) times.record('q', times.deadline('q', BARRIER_DEADLINE, 120_000, slow) - 1, slow);
    expect(times.deadline('q', BARRIER_DEADLINE, 120_000, slow)).toBe(BARRIER_DEADLINE.floorMs);
    // Its answers do raise the others' deadline (it is one of them), never past the ceiling.
    expect(times.deadline('q', BARRIER_DEADLINE, 120_000, honest[0])).toBeLessThanOrEqual(120_000);
  });

  it('alone, a tab is judged on everyone; bad samples are ignored; the window keeps the newest', () => {
    const times = new AnswerTimes(10);
    const a = {};
    for (let i = 0; i < 20; i++) times.record('q', i < 10 ? 50_000 : 100, a);
    times.record('q', Number.NaN, a);
    times.record('q', -1, a);
    expect(times.of('q')).toEqual(Array.from({ length: 10 }, () => 100));
    expect(times.deadline('q', rule, 120_000, a)).toBe(5_000);
    expect(times.deadline('other', rule, 120_000, a)).toBe(30_000);
  });
});
