/**
 * stage-restore and cpsr in the churn study's pricing (issue 25): priced at the forks' checkpoint
 * interval with their measured setbacks, a checkpoint upload every K iterations, the checkpoint
 * download per failure and, for cpsr, the prediction; the checkpoint baseline is priced at the
 * same interval so the two compare.
 */
import { describe, it, expect } from 'vitest';
import type { ForkRecord, ForkStudyConfig, ForkStudyResult } from './fork.js';
import { priceSetting, stageCheckpointPricing } from './study.js';
import { DEFAULT_FORK, QUICK_FORK } from './cli.js';

const fork = (strategy: ForkRecord['strategy'], stage: number, setback: number, computeSeconds = 0): ForkRecord => ({
  order: 'plain', strategy, fork: 20, stage, method: strategy === 'exact' ? 'exact' : (strategy as ForkRecord['method']), fallback: false, a: null, b: null,
  firstLoss: 3, baseFirstLoss: 3, at: 30, loss: 2.5, baseLoss: 2.5, setback, gap: 0, capped: false, restoredFrom: strategy === 'stage-restore' || strategy === 'cpsr' ? 12 : null, computeSeconds,
});

const S = 4;
const forks: ForkRecord[] = [];
for (let s = 0; s < S; s++) forks.push(fork('stage-restore', s, 0), fork('cpsr', s, 0, 0.5), fork('checkfree', s, 2));
const setting = { S, p: 0.01, N: 1000, runs: 400, seed: 3, checkpointCost: 0.5, redundantOverhead: 0.3, wait: 1, swapOverhead: 0.1, swapFraction: 0, intervals: [10, 0] };

describe('stage-restore and cpsr in the churn study pricing', () => {
  it('the pricing inputs come from the fork study: its interval, the mean prediction over the iteration time', () => {
    const c: ForkStudyConfig = { ...QUICK_FORK, checkpointEvery: 12 };
    const fr: ForkStudyResult = { bases: [{ order: 'plain', curve: [], trainLoss: [], iterationSeconds: 0.25 }], forks };
    expect(stageCheckpointPricing(c, fr)).toEqual({ every: 12, predictCost: 0.5 / 0.25 });
    expect(stageCheckpointPricing(c, { ...fr, forks: forks.filter((f) => f.strategy === 'checkfree') })).toBeNull();
    expect(DEFAULT_FORK.strategies).toEqual(expect.arrayContaining(['stage-restore', 'cpsr']));
    expect(DEFAULT_FORK.checkpointEvery).toBeGreaterThan(0);
  });

  it('priced with checkpoints every K and no rollback; the checkpoint baseline priced at the same K; cpsr pays its prediction', () => {
    const rows = priceSetting({ ...setting, stageCheckpoints: { every: 12, predictCost: 2 } }, forks);
    const by = (s: string) => rows.find((r) => r.strategy === s)!;
    expect(by('stage-restore').interval).toBe(12);
    expect(by('cpsr').interval).toBe(12);
    expect(by('checkpoint@12').interval).toBe(12); // added: the baseline at the same interval
    const N = setting.N;
    // slower than failure-free by at least the checkpoints it takes (N/K - 1 of cost 0.5)
    expect(by('stage-restore').r.mean).toBeGreaterThan(N + (Math.floor(N / 12) - 1) * 0.5);
    // setback 0: cheaper than rolling everything back at the same interval
    expect(by('stage-restore').r.mean).toBeLessThan(by('checkpoint@12').r.mean);
    // the same setbacks: cpsr differs by about 2 T of prediction per failure
    const sr = by('stage-restore').r;
    const cp = by('cpsr').r;
    expect(cp.failures).toBeGreaterThan(0);
    expect(cp.mean - sr.mean).toBeGreaterThan(0.8 * 2 * sr.failures);
    expect(cp.mean - sr.mean).toBeLessThan(1.2 * 2 * cp.failures + 4 * (sr.stderr + cp.stderr));
    // without stage checkpoint pricing they are not priced at all
    expect(priceSetting(setting, forks).some((r) => r.strategy === 'cpsr' || r.strategy === 'stage-restore')).toBe(false);
  });
});
