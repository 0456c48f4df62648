import { describe, it, expect } from 'vitest';
import { hourlyRateOf, perIterationProbability, youngDalyIntervalSeconds } from './failure-model.js';

describe('failure model', () => {
  it('turns hourly rates into the reference per-iteration probabilities', () => {
    // docs/research.md: 1 - (1 - h)^(T/3600); the inverse gives the rate back.
    expect(perIterationProbability(0.1, 3600)).toBeCloseTo(0.1, 12);
    expect(perIterationProbability(0.05, 60)).toBeCloseTo(1 - Math.pow(0.95, 60 / 3600), 12);
    for (const h of [0.01, 0.05, 0.33, 0.9]) expect(hourlyRateOf(perIterationProbability(h, 42), 42)).toBeCloseTo(h, 10);
    expect(() => perIterationProbability(1.5, 10)).toThrow(RangeError);
    expect(() => perIterationProbability(0.1, 0)).toThrow(RangeError);
  });

  it('gives Young/Daly as sqrt(2C/lambda) in seconds', () => {
    expect(youngDalyIntervalSeconds(2, 1 / 3600)).toBeCloseTo(Math.sqrt(2 * 2 * 3600), 9);
    expect(youngDalyIntervalSeconds(0, 1)).toBe(0); // a free checkpoint: take it every time
    expect(youngDalyIntervalSeconds(2, 0)).toBe(Infinity); // no failures: never
    expect(() => youngDalyIntervalSeconds(-1, 1)).toThrow(RangeError);
  });
});
