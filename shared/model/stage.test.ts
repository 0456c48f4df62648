import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from './tf.js';

import { Stage, validateWeights, WeightsError, type NamedWeights } from './stage.js';
import { resolveConfig, configForStages, ConfigError, getPreset, type ModelConfig } from './config.js';
import { mulberry32 } from './rng.js';
import { maxRelErr } from '../../testing/numerics.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

const base = { vocabSize: 32, dModel: 16, nHeads: 2, nLayers: 4, seqLen: 8, seed: 7 };

function randomTokens(B: number, T: number, V: number, seed: number): Int32Array {
  const r = mulberry32(seed);
  return Int32Array.from({ length: B * T }, () => Math.floor(r() * V));
}

function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
}

/** Runs one microbatch through a chain of stages; returns loss and the stages' gradients by global name. */
function chainLossAndGrads(stages: Stage[], ids: tf.Tensor2D, targets: tf.Tensor2D): { loss: number; grads: NamedWeights } {
  let x: tf.Tensor = ids;
  const key = 'mb0';
  for (const s of stages) {
    const out = s.forward(key, x, s.fullSegment(), s.hasHead ? targets : undefined);
    if (x !== ids) x.dispose();
    x = out;
  }
  const loss = (x.dataSync() as Float32Array)[0]!;
  x.dispose();
  let dy: tf.Tensor | number = 1;
  for (const s of [...stages].reverse()) {
    const dx = s.backward(key, dy);
    if (typeof dy !== 'number') dy.dispose();
    if (dx) dy = dx;
  }
  const grads: NamedWeights = {};
  for (const s of stages) {
    const g = s.getGrads();
    for (const spec of s.specs) grads[spec.globalName] = g[spec.name]!;
  }
  return { loss, grads };
}

describe('pipeline split is exact', () => {
  const B = 2;
  const T = base.seqLen;
  const ids = tf.tensor2d(randomTokens(B, T, base.vocabSize, 1), [B, T], 'int32');
  const targets = tf.tensor2d(randomTokens(B, T, base.vocabSize, 2), [B, T], 'int32');

  const unsplit = new Stage(resolveConfig({ ...base, layersPerStage: base.nLayers }), 0);
  const ref = chainLossAndGrads([unsplit], ids, targets);

  for (const S of [1, 2, 4]) {
    it(`${S} stage(s) give the unsplit loss and gradients (rel err <= 1e-4)`, () => {
      const cfg = configForStages(base, S);
      const stages = Array.from({ length: S }, (_, i) => new Stage(cfg, i));
      const got = chainLossAndGrads(stages, ids, targets);
      expect(Math.abs(got.loss - ref.loss) / Math.abs(ref.loss)).toBeLessThanOrEqual(1e-4);
      expect(Object.keys(got.grads).sort()).toEqual(Object.keys(ref.grads).sort());
      for (const [name, g] of Object.entries(ref.grads)) {
        expect(maxRelErr(got.grads[name]!, g), name).toBeLessThanOrEqual(1e-4);
      }
      stages.forEach((s) => s.dispose());
    });
  }

  it('block stages with the same layer count share names and shapes', () => {
    const cfg = configForStages({ ...base, nLayers: 8 }, 4);
    const mids = [1, 2].map((i) => new Stage(cfg, i));
    expect(mids[0]!.specs.map((s) => [s.name, s.shape])).toEqual(mids[1]!.specs.map((s) => [s.name, s.shape]));
    const first = new Stage(cfg, 0);
    const blockNames = first.specs.filter((s) => s.name.startsWith('blocks.')).map((s) => s.name);
    expect(blockNames).toEqual(mids[0]!.specs.map((s) => s.name));
  });

  it('initialisation is deterministic from the seed', () => {
    const cfg = configForStages(base, 2);
    const a = new Stage(cfg, 1).getWeights();
    const b = new Stage(cfg, 1).getWeights();
    const c = new Stage({ ...cfg, seed: 8 }, 1).getWeights();
    for (const n of Object.keys(a)) expect(a[n]).toEqual(b[n]);
    expect(a['blocks.0.attn.wq']).not.toEqual(c['blocks.0.attn.wq']);
  });
});

describe('gradients agree with finite differences', () => {
  // A larger init makes gradients big enough for float32 central differences.
  const cfg = configForStages({ vocabSize: 11, dModel: 8, nHeads: 2, nLayers: 3, seqLen: 5, seed: 3, initStd: 0.4 }, 3);
  const B = 2;
  const T = 5;
  const eps = 1e-2;
  const close = (fd: number, an: number) => Math.abs(fd - an) <= 3e-3 + 3e-2 * Math.abs(an);

  function checkParams(stage: Stage, lossOf: () => number, grads: NamedWeights): void {
    const w = stage.getWeights();
    const r = mulberry32(99 + stage.index);
    for (const spec of stage.specs) {
      for (let k = 0; k < 6; k++) {
        const i = Math.floor(r() * w[spec.name]!.length);
        const orig = w[spec.name]![i]!;
        const set = (v: number) => {
          const copy = Float32Array.from(w[spec.name]!);
          copy[i] = v;
          stage.setWeights({ [spec.name]: copy }, { partial: true });
        };
        set(orig + eps);
        const lp = lossOf();
        set(orig - eps);
        const lm = lossOf();
        set(orig);
        const fd = (lp - lm) / (2 * eps);
        expect(close(fd, grads[spec.name]![i]!), `${spec.name}[${i}] fd ${fd} vs ${grads[spec.name]![i]}`).toBe(true);
      }
    }
  }

  it('middle stage: input gradient and parameter gradients', () => {
    const s = new Stage(cfg, 1);
    const xData = randomArray(B * T * cfg.dModel, 5);
    const rData = randomArray(B * T * cfg.dModel, 6);
    const R = tf.tensor3d(rData, [B, T, cfg.dModel]);
    const lossAt = (xd: Float32Array) => {
      const x = tf.tensor3d(xd, [B, T, cfg.dModel]);
      const y = s.infer(x);
      const l = tf.sum(tf.mul(y, R)).dataSync()[0]!;
      x.dispose();
      y.dispose();
      return l;
    };
    const x = tf.tensor3d(xData, [B, T, cfg.dModel]);
    s.forward('a', x).dispose();
    const dx = s.backward('a', R)!.dataSync() as Float32Array;
    const grads = s.getGrads();
    const r = mulberry32(4);
    for (let k = 0; k < 12; k++) {
      const i = Math.floor(r() * xData.length);
      const p = Float32Array.from(xData);
      p[i]! += eps;
      const m = Float32Array.from(xData);
      m[i]! -= eps;
      const fd = (lossAt(p) - lossAt(m)) / (2 * eps);
      expect(close(fd, dx[i]!), `dx[${i}] fd ${fd} vs ${dx[i]}`).toBe(true);
    }
    checkParams(s, () => lossAt(xData), grads);
  });

  it('first stage (embedding) and last stage (head + loss) parameter gradients', () => {
    const first = new Stage(cfg, 0);
    const last = new Stage(cfg, 2);
    const ids = tf.tensor2d(randomTokens(B, T, cfg.vocabSize, 8), [B, T], 'int32');
    const tg = tf.tensor2d(randomTokens(B, T, cfg.vocabSize, 9), [B, T], 'int32');
    const xData = randomArray(B * T * cfg.dModel, 10);
    const R = tf.tensor3d(randomArray(B * T * cfg.dModel, 11), [B, T, cfg.dModel]);
    first.forward('a', ids).dispose();
    first.backward('a', R);
    const firstLoss = () => tf.tidy(() => tf.sum(tf.mul(first.infer(ids), R)).dataSync()[0]!);
    checkParams(first, firstLoss, first.getGrads());

    const x = tf.tensor3d(xData, [B, T, cfg.dModel]);
    last.forward('a', x, last.fullSegment(), tg).dispose();
    last.backward('a', 1);
    const lastLoss = () =>
      tf.tidy(() => {
        const l = last.forward('probe', x, last.fullSegment(), tg);
        last.abandon();
        return l.dataSync()[0]!;
      });
    checkParams(last, lastLoss, last.getGrads());
  });
});

describe('microbatches in flight', () => {
  it('A,B forward then B,A backward accumulates the same gradients as A then B', () => {
    const cfg = configForStages(base, 2);
    const B = 2;
    const T = base.seqLen;
    const mk = (seed: number) => tf.tensor3d(randomArray(B * T * cfg.dModel, seed), [B, T, cfg.dModel]);
    const tg = (seed: number) => tf.tensor2d(randomTokens(B, T, cfg.vocabSize, seed), [B, T], 'int32');
    const [xa, xb, ta, tb] = [mk(1), mk(2), tg(3), tg(4)];

    const seq = new Stage(cfg, 1);
    seq.forward('A', xa, seq.fullSegment(), ta).dispose();
    const dxa1 = seq.backward('A', 0.5)!.dataSync();
    seq.forward('B', xb, seq.fullSegment(), tb).dispose();
    seq.backward('B', 0.5);

    const inter = new Stage(cfg, 1);
    inter.forward('A', xa, inter.fullSegment(), ta).dispose();
    inter.forward('B', xb, inter.fullSegment(), tb).dispose();
    expect(inter.inFlight().sort()).toEqual(['A', 'B']);
    inter.backward('B', 0.5);
    const dxa2 = inter.backward('A', 0.5)!.dataSync();

    expect(maxRelErr(dxa2 as Float32Array, dxa1 as Float32Array)).toBeLessThan(1e-6);
    const g1 = seq.getGrads();
    const g2 = inter.getGrads();
    for (const n of Object.keys(g1)) expect(maxRelErr(g2[n]!, g1[n]!), n).toBeLessThan(1e-5);
  });

  it('refuses a step with microbatches in flight, and abandon() clears them', () => {
    const cfg = configForStages(base, 2);
    const s = new Stage(cfg, 0);
    const ids = tf.tensor2d(randomTokens(1, 4, cfg.vocabSize, 1), [1, 4], 'int32');
    s.forward('x', ids).dispose();
    expect(() => s.clipAndStep()).toThrow(/in flight/);
    s.abandon();
    expect(s.inFlight()).toEqual([]);
    expect(s.clipAndStep().preClipNorm).toBe(0);
  });
});

describe('clipAndStep and weights', () => {
  it('clips to global norm 1 and reports both norms', () => {
    const cfg = configForStages({ ...base, initStd: 0.5 }, 1);
    const s = new Stage(cfg, 0, { lr: 1e-3 });
    const ids = tf.tensor2d(randomTokens(2, 8, cfg.vocabSize, 1), [2, 8], 'int32');
    s.forward('a', ids, s.fullSegment(), ids).dispose();
    s.backward('a', 100); // a large loss scale makes the raw norm exceed 1
    const before = s.getWeights();
    const n = s.clipAndStep();
    expect(n.preClipNorm).toBeGreaterThan(1);
    expect(n.postClipNorm).toBeCloseTo(1, 4);
    const after = s.getWeights();
    expect(after['head.lm_head']).not.toEqual(before['head.lm_head']);
    expect(s.optimizerStep()).toBe(1);
    s.resetOptimizer(2e-3);
    expect(s.optimizerStep()).toBe(0);
    expect(s.lr).toBe(2e-3);
  });

  it('clipAndStepAsync (what volunteers use) reports the same norms and takes the same step', async () => {
    const cfg = configForStages({ ...base, initStd: 0.5 }, 1);
    const ids = tf.tensor2d(randomTokens(2, 8, cfg.vocabSize, 1), [2, 8], 'int32');
    const [a, b] = [new Stage(cfg, 0, { lr: 1e-3 }), new Stage(cfg, 0, { lr: 1e-3 })];
    for (const s of [a, b]) {
      s.forward('a', ids, s.fullSegment(), ids).dispose();
      s.backward('a', 100);
    }
    expect(a.specs.length).toBeGreaterThan(8); // more gradients than one WebGPU shader may bind
    const expected = Math.sqrt(Object.values(a.getGrads()).reduce((sum, g) => sum + g.reduce((x, v) => x + v * v, 0), 0));
    const sync = a.clipAndStep();
    const async_ = await b.clipAndStepAsync();
    expect(async_.preClipNorm).toBeCloseTo(expected, 3);
    expect(async_).toEqual(sync);
    expect(b.getWeights()).toEqual(a.getWeights());
  });

  it('optimizer state round-trips: a restored stage takes exactly the same next step', () => {
    const cfg = configForStages(base, 2);
    const ids = tf.tensor2d(randomTokens(2, 8, cfg.vocabSize, 1), [2, 8], 'int32');
    const train = (s: Stage) => {
      s.forward('a', ids).dispose();
      s.backward('a', tf.ones([2, 8, cfg.dModel]));
      s.clipAndStep();
    };
    const a = new Stage(cfg, 0, { lr: 1e-2 });
    train(a);
    train(a);
    const b = new Stage(cfg, 0, { lr: 5e-4 });
    b.setWeights(a.getWeights());
    b.setOptimizerState(a.getOptimizerState());
    expect(b.optimizerStep()).toBe(2);
    expect(b.lr).toBe(1e-2);
    train(a);
    train(b);
    const wa = a.getWeights();
    const wb = b.getWeights();
    for (const n of Object.keys(wa)) expect(maxRelErr(wb[n]!, wa[n]!), n).toBeLessThan(1e-6);
    const bad = a.getOptimizerState();
    bad.m['embed.weight'] = new Float32Array(3);
    expect(() => b.setOptimizerState(bad)).toThrow(/expected/);
  });

  it('setWeights refuses unknown names, wrong sizes, non-finite values and missing names, changing nothing', () => {
    const cfg = configForStages(base, 2);
    const s = new Stage(cfg, 1);
    const w = s.getWeights();
    const name = 'blocks.0.attn.wq';
    expect(() => s.setWeights({ ...w, 'blocks.9.attn.wq': w[name]! })).toThrow(WeightsError);
    expect(() => s.setWeights({ [name]: new Float32Array(3) }, { partial: true })).toThrow(/expected/);
    const bad = Float32Array.from(w[name]!);
    bad[5] = NaN;
    expect(() => s.setWeights({ [name]: bad }, { partial: true })).toThrow(/non-finite/);
    const { [name]: _omit, ...missing } = w;
    expect(() => s.setWeights(missing)).toThrow(/missing/);
    expect(s.getWeights()[name]).toEqual(w[name]);
    expect(() => validateWeights(s.specs, w)).not.toThrow();
  });
});

describe('bad config fails with a clear message', () => {
  const good: ModelConfig = { ...base, layersPerStage: 2 };
  it.each([
    [{ ...good, nHeads: 3 }, /nHeads \(3\) must divide dModel \(16\)/],
    [{ ...good, layersPerStage: 8 }, /more stages than layers/],
    [{ ...good, layersPerStage: 3 }, /must divide nLayers/],
    [{ ...good, dModel: 0 }, /dModel must be a positive integer/],
  ])('%o', (cfg, msg) => {
    expect(() => resolveConfig(cfg)).toThrow(ConfigError);
    expect(() => resolveConfig(cfg)).toThrow(msg);
  });
  it('stages that do not fit the layers', () => {
    expect(() => configForStages(base, 8)).toThrow(/more stages \(8\) than layers \(4\)/);
    expect(() => configForStages(base, 3)).toThrow(/must divide the layer count/);
  });
  it('unknown preset', () => {
    expect(() => getPreset('huge')).toThrow(/unknown preset "huge"; choose one of: tiny, small, base/);
  });
});
