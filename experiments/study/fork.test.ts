import { describe, it, expect, beforeAll } from 'vitest';
import { useNodeBackend } from '../../trainer/node-backend.js';
import { runForkStudy, swapQualityCost, type ForkStudyConfig } from './fork.js';

/** A very small study: 3 stages of one block, d 16, two fork points, short horizon. */
const TINY_FORK_STUDY: ForkStudyConfig = {
  stages: 3,
  layersPerStage: 1,
  dModel: 16,
  nHeads: 2,
  seqLen: 16,
  microbatches: 2,
  batch: 1,
  lr: 3e-3,
  seed: 11,
  lrScale: 1.1,
  replicaEvery: 2,
  edge: 'reinit',
  forkPoints: [4],
  horizon: 2,
  evalEvery: 1,
  evalBatches: 2,
  strategies: ['checkfree', 'checkfree+', 'none', 'exact'],
};

beforeAll(async () => {
  await useNodeBackend('wasm');
});

describe('fork runner', () => {
  it('an exact restore reproduces the base run bit for bit; setbacks are >= 0 and 0 for exact restores', () => {
    const r = runForkStudy(TINY_FORK_STUDY);
    expect(r.bases.map((b) => b.order)).toEqual(['plain', 'swap']);
    const exact = r.forks.filter((f) => f.strategy === 'exact');
    expect(exact).toHaveLength(2); // 1 fork point x 2 orders
    for (const f of exact) {
      expect(f.loss).toBe(f.baseLoss);
      expect(f.firstLoss).toBe(f.baseFirstLoss);
      expect(f.setback).toBe(0);
      expect(f.gap).toBeLessThanOrEqual(0);
    }
    const rebuilt = r.forks.filter((f) => f.strategy !== 'exact');
    expect(rebuilt).toHaveLength(3 * 3); // stages x strategies
    for (const f of rebuilt) {
      expect(f.setback).toBeGreaterThanOrEqual(0);
      expect(Number.isFinite(f.loss)).toBe(true);
    }
    // A lossy recovery does change the run: re-initialising the head stage costs loss right away.
    const head = rebuilt.find((f) => f.strategy === 'none' && f.stage === 2)!;
    expect(head.firstLoss).toBeGreaterThan(head.baseFirstLoss + 0.05);
    expect(head.setback).toBeGreaterThan(0);
    // checkfree+ copies stage 1 for a lost stage 0 (S = 3); checkfree falls back to re-init there.
    expect(rebuilt.find((f) => f.strategy === 'checkfree+' && f.stage === 0)!.method).toBe('copy');
    expect(rebuilt.find((f) => f.strategy === 'checkfree' && f.stage === 0)).toMatchObject({ method: 'reinit', fallback: true });
    const cost = swapQualityCost(r.bases[0]!, r.bases[1]!);
    expect(cost.length).toBeGreaterThan(0);
    for (const c of cost) expect(c.setback).toBeGreaterThanOrEqual(0);
  }, 60_000);

  it('splits the jobs into parts that together cover every fork once', () => {
    const c = { ...TINY_FORK_STUDY, strategies: ['none' as const], forkPoints: [2], horizon: 1 };
    const whole = runForkStudy(c).forks.map((f) => `${f.fork}:${f.stage}:${f.loss}`);
    const parts = [0, 1].flatMap((part) => runForkStudy(c, { part, parts: 2 }).forks.map((f) => `${f.fork}:${f.stage}:${f.loss}`));
    expect(parts.sort()).toEqual(whole.sort());
  }, 60_000);
});
