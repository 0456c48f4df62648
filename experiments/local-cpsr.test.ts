/**
 * CPSR and the plain stage restore on in-process stages: only the lost stage comes back (from its
 * last checkpoint, moved forward by its predictor under cpsr), every other stage keeps its exact
 * state, and the predicted stage is closer to the lost state than the plain restore.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useNodeBackend } from '../trainer/node-backend.js';
import { runIteration } from '../trainer/pipeline.js';
import { loadDataset } from '../trainer/corpus-file.js';
import { DEFAULT_SETTINGS, modelConfigOf } from '../shared/run-settings.js';
import { Stage } from '../shared/model/stage.js';
import { stageParamSpecs } from '../shared/model/params.js';
import { flattenWeights } from '../shared/recovery/cpsr/flat.js';
import { LocalCpsr } from './local-cpsr.js';
import { snapshotStage, restoreStage } from './stage-snapshot.js';

// tiny preset, short sequences: an iteration takes a few tens of ms
const settings = { ...DEFAULT_SETTINGS, stages: 4, microbatches: 1, batch: 2, seqLen: 16 };
const INTERVAL = 3;
const FAIL = 23; // last checkpoint at 21: 8 checkpoints (0..21), horizon 2
const LOST = 1;

let cpsr: LocalCpsr;
let live: Stage[];
const cfg = modelConfigOf(settings);

beforeAll(async () => {
  await useNodeBackend('wasm');
  const { dataset } = loadDataset({ seqLen: cfg.seqLen });
  live = Array.from({ length: settings.stages }, (_, i) => new Stage(cfg, i, { lr: settings.lr }));
  cpsr = new LocalCpsr(cfg, settings.stages, { interval: INTERVAL, fitStages: [LOST] });
  cpsr.maybeCheckpoint(live, 0);
  for (let it = 0; it < FAIL; it++) {
    runIteration(live, [dataset.trainBatch(settings.seed, it, 0, settings.batch)], { swap: false, iteration: it });
    cpsr.maybeCheckpoint(live, it + 1);
  }
}, 120_000);

afterAll(() => {
  live?.forEach((s) => s.dispose());
  cpsr?.dispose();
});

const flat = (s: Stage) => flattenWeights(s.getWeights(), stageParamSpecs(cfg, s.index));
const dist = (a: Float32Array, b: Float32Array) => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0));

describe('LocalCpsr', () => {
  it('stage-restore and cpsr rebuild only the lost stage; cpsr lands closer to the lost state', () => {
    expect(cpsr.last).toBe(21);
    const lost = flat(live[LOST]!);
    const results: Record<string, Float32Array> = {};
    for (const mode of ['stage-restore', 'cpsr'] as const) {
      const fork = live.map((s) => restoreStage(cfg, snapshotStage(s)));
      const others = fork.map((s) => (s.index === LOST ? null : flat(s)));
      const ev = cpsr.clone().recover(fork, LOST, FAIL, mode);
      expect(ev).toMatchObject({ stage: LOST, mode, from: 21, to: FAIL });
      fork.forEach((s, i) => i !== LOST && expect(flat(s), `stage ${i} keeps its weights`).toEqual(others[i]));
      expect(fork[LOST]!.optimizerStep()).toBe(21); // Adam state from the checkpoint
      results[mode] = flat(fork[LOST]!);
      if (mode === 'cpsr') {
        expect(ev.predicted, ev.description).toBe(true);
        expect(ev.fit?.usable).toBe(true);
      }
      fork.forEach((s) => s.dispose());
    }
    const checkpoint = cpsr.histories[LOST]!.last!.state;
    expect(results['stage-restore']).toEqual(checkpoint);
    expect(dist(results.cpsr!, lost)).toBeLessThan(dist(checkpoint, lost));
  });

  it('rollbackAll puts every stage back to its checkpoint', () => {
    const fork = live.map((s) => restoreStage(cfg, snapshotStage(s)));
    const c = cpsr.clone();
    expect(c.rollbackAll(fork)).toBe(21);
    fork.forEach((s, i) => expect(flat(s)).toEqual(cpsr.histories[i]!.last!.state));
    fork.forEach((s) => s.dispose());
  });

  it('refuses to restore before any checkpoint', () => {
    const fresh = new LocalCpsr(cfg, settings.stages, { interval: INTERVAL });
    expect(() => fresh.recover(live.slice(), LOST, 5, 'stage-restore')).toThrow(/no checkpoint of stage 1/);
    expect(() => new LocalCpsr(cfg, settings.stages, { interval: 0 })).toThrow(/interval/);
  });
});
