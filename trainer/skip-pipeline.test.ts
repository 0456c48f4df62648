/**
 * Skip paths in the local trainer are numerically exact: a microbatch whose block order skips (or
 * reorders) stages computes exactly what the unsplit model with only those blocks, in that order,
 * computes (loss and every gradient, rel <= 1e-4), and a partial-model validation equals the
 * unsplit partial model's loss. A stage no microbatch visits takes no step. A recorded schedule
 * replays the run exactly, and bad schedule files are refused with the broken rule named.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '../shared/model/tf.js';
import { Stage, type NamedWeights } from '../shared/model/stage.js';
import { configForStages } from '../shared/model/config.js';
import { mulberry32 } from '../shared/model/rng.js';
import { maxRelErr } from '../testing/numerics.js';
import { evaluate, runIteration, runMicrobatch, sampleGreedy, stashKey } from './pipeline.js';
import { trainLocal } from './cli.js';
import { DEFAULT_SETTINGS } from '../shared/run-settings.js';
import { parseRecordedSchedule } from '../shared/schedule/recorded-schedule.js';
import type { Batch } from '../shared/data/dataset.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

const base = { vocabSize: 32, dModel: 16, nHeads: 2, nLayers: 8, seqLen: 8, seed: 7 };
const S = 4; // 2 layers per stage

function batchOf(seed: number, B = 2): Batch {
  const r = mulberry32(seed);
  const n = B * base.seqLen;
  return {
    tokens: Int32Array.from({ length: n }, () => Math.floor(r() * base.vocabSize)),
    targets: Int32Array.from({ length: n }, () => Math.floor(r() * base.vocabSize)),
    batch: B,
    seqLen: base.seqLen,
  } as Batch;
}

/** Split stages with distinct random weights (not the init, so every block matters). */
function splitStages(): Stage[] {
  const cfg = configForStages(base, S);
  return Array.from({ length: S }, (_, i) => {
    const st = new Stage(cfg, i);
    const r = mulberry32(100 + i);
    const w: NamedWeights = {};
    for (const spec of st.specs) w[spec.name] = Float32Array.from({ length: spec.shape.reduce((a, b) => a * b, 1) }, () => (r() * 2 - 1) * 0.3 + (spec.name.includes('norm') ? 1 : 0));
    st.setWeights(w);
    return st;
  });
}

/** The unsplit model holding the blocks of `order` in that order (embedding of stage 0, head of stage S-1), and the name map back. */
function unsplitOf(stages: Stage[], order: number[]): { model: Stage; names: Map<string, { stage: number; name: string }> } {
  const lps = stages[0]!.config.layersPerStage;
  const cfg = configForStages({ ...base, nLayers: order.length * lps }, 1);
  const model = new Stage(cfg, 0);
  const w: NamedWeights = {};
  const names = new Map<string, { stage: number; name: string }>();
  order.forEach((s, pos) => {
    const sw = stages[s]!.getWeights();
    for (const [n, v] of Object.entries(sw)) {
      const m = /^blocks\.(\d+)\.(.*)$/.exec(n);
      if (!m) continue;
      const un = `blocks.${pos * lps + Number(m[1])}.${m[2]}`;
      w[un] = v;
      names.set(un, { stage: s, name: n });
    }
  });
  w['embed.weight'] = stages[0]!.getWeights()['embed.weight']!;
  names.set('embed.weight', { stage: 0, name: 'embed.weight' });
  for (const [n, v] of Object.entries(stages[S - 1]!.getWeights())) {
    if (!n.startsWith('head.')) continue;
    w[n] = v;
    names.set(n, { stage: S - 1, name: n });
  }
  model.setWeights(w);
  return { model, names };
}

describe('skip paths in the local trainer', () => {
  for (const order of [[0, 1, 3], [0, 2, 3], [0, 3], [1, 0, 3], [0, 2, 1, 3], [1, 0, 3, 2]]) {
    it(`block order ${order.join(',')} equals the unsplit model with only those blocks, in that order (loss and gradients, rel <= 1e-4)`, () => {
      const stages = splitStages();
      const { model, names } = unsplitOf(stages, order);
      const b = batchOf(3);
      const loss = runMicrobatch(stages, 0, b, { swap: false, lossScale: 1, counter: 0, order });
      const ref = runMicrobatch([model], 0, b, { swap: false, lossScale: 1, counter: 0 });
      expect(Math.abs(loss - ref) / Math.abs(ref)).toBeLessThanOrEqual(1e-4);
      const refGrads = model.getGrads();
      const got = stages.map((s) => s.getGrads());
      expect(Object.keys(refGrads).sort()).toEqual([...names.keys()].sort());
      for (const [un, g] of Object.entries(refGrads)) {
        const { stage, name } = names.get(un)!;
        expect(maxRelErr(got[stage]![name]!, g), `${un} <- stage ${stage} ${name}`).toBeLessThanOrEqual(1e-4);
      }
      // Skipped stages hold no gradient at all.
      for (let s = 0; s < S; s++) if (!order.includes(s)) expect(Object.keys(got[s]!)).toEqual([]);
      // And the skip path is not the full model: the full path's loss differs.
      if (order.length < S) {
        stages.forEach((s) => s.abandon());
        const full = runMicrobatch(stages, 0, b, { swap: false, lossScale: 1, counter: 0 });
        expect(Math.abs(full - loss)).toBeGreaterThan(1e-3);
      }
      [...stages, model].forEach((s) => s.dispose());
    });
  }

  it('a partial-model validation and greedy sample equal the unsplit partial model\'s', () => {
    const stages = splitStages();
    const { model } = unsplitOf(stages, [0, 2, 3]);
    const val = [batchOf(5), batchOf(6)];
    const got = evaluate(stages, val, 'f32', [0, 2, 3]);
    const ref = evaluate([model], val, 'f32');
    expect(Math.abs(got - ref) / ref).toBeLessThanOrEqual(1e-5);
    expect(Math.abs(evaluate(stages, val, 'f32') - got)).toBeGreaterThan(1e-3);
    expect(sampleGreedy(stages, [1, 2, 3], 5, base.seqLen, [0, 2, 3])).toEqual(sampleGreedy([model], [1, 2, 3], 5, base.seqLen));
    [...stages, model].forEach((s) => s.dispose());
  });

  it('a stage no microbatch visits takes no step: its weights and Adam step count stay', () => {
    const stages = splitStages();
    const before = stages.map((s) => s.getWeights());
    const r = runIteration(stages, [batchOf(1), batchOf(2)], { swap: false, iteration: 0, orders: [[0, 1, 3], [0, 1, 3]] });
    expect(r.norms[2]).toBeNull();
    expect(stages[2]!.optimizerStep()).toBe(0);
    expect(stages[1]!.optimizerStep()).toBe(1);
    const after = stages.map((s) => s.getWeights());
    for (const n of Object.keys(before[2]!)) expect(after[2]![n]).toEqual(before[2]![n]);
    expect(maxRelErr(after[1]!['blocks.0.attn.wq']!, before[1]!['blocks.0.attn.wq']!)).toBeGreaterThan(0);
    expect(() => runIteration(stages, [batchOf(1)], { swap: false, iteration: 1, orders: [[0, 3], [0, 3]] })).toThrow(/one path per microbatch/);
    expect(stashKey(1, 2)).toBe('1:2');
    stages.forEach((s) => s.dispose());
  });
});

describe('skip schedules in trainLocal', () => {
  const settings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 4, batch: 1, seqLen: 16, steps: 3, evalEvery: 3, evalBatches: 1, swap: true };

  it('a recorded schedule replays the run exactly (the form the swarm records); the schedule obeys the rules', async () => {
    const a = await trainLocal({ ...settings, skipRatio: 0.25, scheduler: 'collision', evalStages: [0, 2, 3] });
    expect(a.schedule).not.toBeNull();
    const recorded = parseRecordedSchedule(JSON.stringify(a.schedule));
    expect(recorded.iterations).toHaveLength(3);
    for (const it of recorded.iterations) for (const p of it.paths) expect(p).toHaveLength(3);
    const b = await trainLocal({ ...settings, recorded });
    expect(b.trainLosses).toEqual(a.trainLosses);
    expect(b.finalValLoss).toBe(a.finalValLoss);
    expect(a.partialValLosses.map((x) => x.step)).toEqual([0, 3]);
    // Full paths train differently.
    const full = await trainLocal({ ...settings });
    expect(full.schedule).toBeNull();
    expect(full.trainLosses[1]).not.toBe(a.trainLosses[1]);
  });

  it('refuses bad schedule files, naming what is wrong', async () => {
    const good = { version: 1, nStages: 4, microbatches: 2, skipRatio: 0.25, swap: false, iterations: [{ vacant: [], paths: [[0, 1, 3], [0, 2, 3]] }] };
    expect(parseRecordedSchedule(good).iterations).toHaveLength(1);
    expect(() => parseRecordedSchedule('{')).toThrow(/not JSON/);
    expect(() => parseRecordedSchedule({ ...good, version: 2 })).toThrow(/version/);
    expect(() => parseRecordedSchedule({ ...good, extra: 1 })).toThrow(/schedule file/);
    expect(() => parseRecordedSchedule({ ...good, iterations: [{ vacant: [], paths: [[0, 1, 3]] }] })).toThrow(/one per microbatch/);
    expect(() => parseRecordedSchedule({ ...good, iterations: [{ vacant: [], paths: [[0, 1, 3], [0, 1, 2, 3]] }] })).toThrow(/microbatch 1: length/);
    expect(() => parseRecordedSchedule({ ...good, iterations: [{ vacant: [], paths: [[0, 1, 3], [0, 1, 1]] }] })).toThrow(/ends/);
    expect(() => parseRecordedSchedule({ ...good, iterations: [{ vacant: [2], paths: [[0, 1, 3], [0, 2, 3]] }] })).toThrow(/vacant/);
    expect(() => parseRecordedSchedule({ ...good, iterations: [{ vacant: [3], paths: [[0, 1, 3], [0, 2, 3]] }] })).toThrow(/intermediate/);
    expect(() => parseRecordedSchedule({ ...good, iterations: [{ vacant: [], paths: [[0, 1.5, 3], [0, 2, 3]] }] })).toThrow(/schedule file/);
    await expect(trainLocal({ ...settings, microbatches: 2, swap: false, recorded: parseRecordedSchedule(good) })).rejects.toThrow(/holds 1 iterations, fewer than --steps 3/);
    await expect(trainLocal({ ...settings, stages: 2, recorded: parseRecordedSchedule(good) })).rejects.toThrow(/recorded schedule is for 4 stages/);
  });
});
