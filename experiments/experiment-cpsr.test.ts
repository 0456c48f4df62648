/**
 * stage-restore and cpsr in the churn experiment (issue 25): executed (never derived: a failure
 * changes the model), checkpointed at the same interval as the checkpoint baseline, priced as a
 * checkpoint upload every K iterations plus, per failure, the replacement wait and the lost
 * stage's checkpoint download; no rollback, so no redo.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { useNodeBackend } from '../trainer/node-backend.js';
import { checkpointSeconds, DEFAULT_NETWORK, slotCost, storageDownloadSeconds } from './cost-model.js';
import { runExperiment, type ExperimentOptions } from './experiment.js';
import { tinyExperimentOptions } from '../testing/tiny-experiment.js';
import { modelBytes, type SlotRecord } from './run.js';
import { modelConfigOf } from '../shared/run-settings.js';

// p_iter = h: failures at slots 1, 2, 5 (and 7 for the rollback).
const options = (over: Partial<ExperimentOptions>): ExperimentOptions => tinyExperimentOptions({ strategies: ['checkpoint', 'stage-restore', 'cpsr'], ...over });

beforeAll(async () => {
  await useNodeBackend('wasm');
});

describe('stage-restore and cpsr in the churn experiment', () => {
  it('restore only the lost stage, pay checkpoints and the restore download, never redo', async () => {
    const r = await runExperiment(options({}));
    const run = (s: string) => r.runs.find((x) => x.summary.strategy === s)!;
    const ck = run('checkpoint');
    expect(ck.summary.rollbacks).toBeGreaterThan(0);
    const o = options({});
    const ctx = { params: { network: DEFAULT_NETWORK, replacementWaitSeconds: 10 }, bytes: modelBytes(modelConfigOf({ ...o.settings, recovery: 'checkfree' }), 4, o.settings.batch) };
    for (const s of ['stage-restore', 'cpsr'] as const) {
      const x = run(s);
      expect(x.summary.derived, s).toBe(false);
      expect(x.trace.spec.checkpointEvery, s).toBe(2);
      expect(x.summary.checkpointEvery, s).toBe(2);
      expect(x.summary.failures, s).toBeGreaterThan(0);
      expect(x.summary.rollbacks, s).toBe(0);
      expect(x.summary.breakdown.redo, s).toBe(0);
      expect(x.summary.slots, s).toBe(6); // no slot is spent recomputing
      expect(x.summary.methods[s], s).toBe(x.summary.failures);
      expect(x.summary.methods.checkpoint ?? 0, s).toBe(0);
      // a checkpoint every 2 completed iterations, as the checkpoint baseline
      const saved = x.trace.slots.filter((sl) => sl.checkpointSaved).map((sl) => sl.iteration);
      expect(saved, s).toEqual([2, 4, 6]);
      expect(x.summary.breakdown.checkpoint, s).toBeCloseTo(saved.length * checkpointSeconds(ctx), 9);
      // each failure slot: the wait + the slowest lost stage's checkpoint download (+ the prediction)
      for (const sl of x.trace.slots.filter((q) => q.failed.length)) {
        expect(sl.checkpointRestoreBytes, s).toEqual(sl.failed.map((l) => 3 * ctx.bytes.stage[l]!));
        const cost = slotCost({ ...ctx, nStages: 4, redundant: false }, sl);
        const download = Math.max(...sl.failed.map((l) => storageDownloadSeconds(DEFAULT_NETWORK, 3 * ctx.bytes.stage[l]!)));
        const predict = sl.recoveries.reduce((a, q) => a + (q.computeSeconds ?? 0), 0);
        expect(cost.recovery, s).toBeCloseTo(10 + download + predict, 9);
        expect(sl.events.join('; '), s).toMatch(new RegExp(`${s}: stage \\d from its checkpoint at iteration \\d`));
      }
    }
    // 4 checkpoints of history at most: cpsr cannot predict yet and says so (the plain restore)
    const cp = run('cpsr');
    expect(cp.trace.slots.flatMap((sl) => sl.events).filter((e) => e.startsWith('cpsr:')).every((e) => /plain restore \(/.test(e))).toBe(true);
    expect(cp.trace.notes.join(' ')).toMatch(/predictor: \d+ fits/);
    // the same interval for all three
    expect(new Set(r.runs.map((x) => x.trace.spec.checkpointEvery))).toEqual(new Set([2]));
  });

  it('auto interval: the executed stage-restore run and the checkpoint baseline share the calibration interval', async () => {
    const r = await runExperiment(options({ strategies: ['checkpoint', 'stage-restore'], checkpointEvery: 'auto', iterations: 4 }));
    const [a, b] = ['checkpoint', 'stage-restore'].map((s) => r.runs.find((x) => x.summary.strategy === s)!.trace.spec.checkpointEvery);
    expect(a).toBe(b);
    expect(r.calibration.intervalFrom).toBe('calibration');
  });

  it('a prediction delays the recovery by its measured seconds', () => {
    const bytes = { stage: [4000, 4000], activation: 64, tokens: 16, embed: 100, head: 100 };
    const ctx = { params: { network: DEFAULT_NETWORK, replacementWaitSeconds: 5 }, bytes, nStages: 2, redundant: false };
    const timing: SlotRecord['timing'] = { swap: false, tasks: { forward: [[0.1, 0.1]], backward: [[0.2, 0.2]] }, step: [0.01, 0.01] };
    const slot = (computeSeconds: number | undefined): SlotRecord['recoveries'][number] => ({ stage: 1, method: 'cpsr', fallback: false, sourceBytes: [], replicaRetakeBytes: [], needsReplacement: true, computeSeconds, description: '' });
    const input = (c: number | undefined) => ({ timing, recoveries: [slot(c)], checkpointRestoreBytes: [12000], checkpointSaved: false, replicaRefreshBytes: [] });
    const plain = slotCost(ctx, input(undefined), timing);
    const predicted = slotCost(ctx, input(0.75), timing);
    expect(plain.recovery).toBeCloseTo(5 + storageDownloadSeconds(DEFAULT_NETWORK, 12000), 12);
    expect(predicted.recovery - plain.recovery).toBeCloseTo(0.75, 12);
  });
});
