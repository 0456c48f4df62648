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

  it('stage-restore and cpsr restore only the lost stage from its last checkpoint: exact at horizon 0, stale after', () => {
    // checkpoints every 3: forks at 21 (a checkpoint: horizon 0) and 23 (horizon 2, from 21; 8 checkpoints of history)
    const c: ForkStudyConfig = { ...TINY_FORK_STUDY, strategies: ['stage-restore', 'cpsr', 'exact'], checkpointEvery: 3, forkPoints: [21, 23], horizon: 2 };
    const r = runForkStudy(c);
    expect(r.bases.map((b) => b.order)).toEqual(['plain']);
    const exact = (f: number) => r.forks.find((x) => x.strategy === 'exact' && x.fork === f)!;
    for (const s of ['stage-restore', 'cpsr'] as const) {
      const fs = r.forks.filter((x) => x.strategy === s);
      expect(fs).toHaveLength(2 * 3); // fork points x stages
      for (const f of fs) {
        expect(f.method).toBe(s);
        expect(f.restoredFrom).toBe(21);
        if (s === 'stage-restore') expect(f).toMatchObject({ fallback: false, computeSeconds: 0 });
        else expect(f.fallback ? f.computeSeconds === 0 : f.computeSeconds > 0).toBe(true);
        if (f.fork === 21) {
          // the checkpoint is the current state: the fork trains the base run exactly
          expect(f.loss, `${s} stage ${f.stage}`).toBe(exact(21).loss);
          expect(f.setback).toBe(0);
        } else {
          // the stage is 2 iterations stale: the first loss differs from the base's
          expect(f.firstLoss, `${s} stage ${f.stage}`).not.toBe(f.baseFirstLoss);
          expect(f.setback).toBeGreaterThanOrEqual(0);
        }
      }
    }
    expect(() => runForkStudy({ ...c, checkpointEvery: undefined })).toThrow(/checkpoint interval/);
  }, 120_000);

  it('splits the jobs into parts that together cover every fork once', () => {
    const c = { ...TINY_FORK_STUDY, strategies: ['none' as const], forkPoints: [2], horizon: 1 };
    const whole = runForkStudy(c).forks.map((f) => `${f.fork}:${f.stage}:${f.loss}`);
    const parts = [0, 1].flatMap((part) => runForkStudy(c, { part, parts: 2 }).forks.map((f) => `${f.fork}:${f.stage}:${f.loss}`));
    expect(parts.sort()).toEqual(whole.sort());
  }, 60_000);
});
