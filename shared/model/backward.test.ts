/**
 * The hand-written backward against tfjs's autodiff of the same forward, the two backward modes
 * against each other, tensor counts over iterations, and the wasm code paths (materialised
 * transposes, per-matrix batched products) against cpu.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as tf from './tf.js';
import '@tensorflow/tfjs-backend-wasm';
import { Stage, type BackwardMode, type NamedWeights } from './stage.js';
import { configForStages, type ResolvedConfig } from './config.js';
import { mulberry32 } from './rng.js';
import { maxRelErr } from '../../testing/numerics.js';
import { bmm, mm } from './matmul.js';
import * as L from './layers.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});
afterAll(async () => {
  await tf.setBackend('cpu');
});

const base = { vocabSize: 32, dModel: 16, nHeads: 2, nLayers: 4, seqLen: 8, seed: 7, initStd: 0.2 };
const B = 2;
const T = base.seqLen;

function randomArray(n: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
}
function randomTokens(n: number, V: number, seed: number): Int32Array {
  const r = mulberry32(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * V));
}

/** One microbatch through stage `index`: input, targets (last stage) and output gradient. */
function microbatch(cfg: ResolvedConfig, index: number, seed: number) {
  const first = index === 0;
  const last = index === cfg.nLayers / cfg.layersPerStage - 1;
  const x = first
    ? tf.tensor2d(randomTokens(B * T, cfg.vocabSize, seed), [B, T], 'int32')
    : tf.tensor3d(randomArray(B * T * cfg.dModel, seed), [B, T, cfg.dModel]);
  const y = last ? tf.tensor2d(randomTokens(B * T, cfg.vocabSize, seed + 1), [B, T], 'int32') : undefined;
  const dy = last ? 0.5 : tf.tensor3d(randomArray(B * T * cfg.dModel, seed + 2), [B, T, cfg.dModel]);
  return { x, y, dy };
}

/** Forward + backward of one microbatch; returns dx (or null) and the gradients. */
function gradsOf(s: Stage, mb: ReturnType<typeof microbatch>, key = 'k'): { dx: Float32Array | null; grads: NamedWeights } {
  s.forward(key, mb.x, s.fullSegment(), mb.y).dispose();
  const dx = s.backward(key, mb.dy);
  const out = dx ? (dx.dataSync() as Float32Array) : null;
  dx?.dispose();
  return { dx: out, grads: s.getGrads() };
}

/**
 * tf.grads of the stage's forward maths (layers.ts) with respect to every parameter and the
 * input: the reference the hand-written backward must equal.
 */
function autodiff(s: Stage, mb: ReturnType<typeof microbatch>): { dx: Float32Array | null; grads: NamedWeights } {
  const cfg = s.config;
  const w = s.getWeights();
  const names = s.specs.map((sp) => sp.name);
  const k = L.blockConstants(cfg, T);
  const first = s.hasEmbed;
  const f = (...args: tf.Tensor[]) => {
    const p = new Map(names.map((n, i) => [n, args[i + (first ? 0 : 1)]!]));
    // The embedding as onehot @ W: the gather's own gradient kernel is missing on some backends.
    let x = first
      ? (tf.matMul(tf.oneHot(tf.reshape(mb.x, [-1]) as tf.Tensor1D, cfg.vocabSize), p.get('embed.weight')!) as tf.Tensor2D)
      : (tf.reshape(args[0]!, [-1, cfg.dModel]) as tf.Tensor2D);
    for (let j = 0; j < cfg.layersPerStage; j++) x = L.block(x, (n) => p.get(`blocks.${j}.${n}`)!, cfg, k, B).y;
    if (!s.hasHead) return tf.reshape(x, [B, T, cfg.dModel]);
    const lg = L.logits(x, p.get('head.norm.weight')!, p.get('head.lm_head')!, cfg.normEps).y;
    return L.crossEntropy(lg, tf.reshape(mb.y!, [-1]) as tf.Tensor1D);
  };
  const params = s.specs.map((sp) => tf.tensor(w[sp.name]!, sp.shape));
  const dy = typeof mb.dy === 'number' ? tf.scalar(mb.dy) : mb.dy;
  const gs = tf.grads(f)(first ? params : [mb.x, ...params], dy);
  const grads: NamedWeights = {};
  names.forEach((n, i) => (grads[n] = gs[i + (first ? 0 : 1)]!.dataSync() as Float32Array));
  const dx = first ? null : (gs[0]!.dataSync() as Float32Array);
  tf.dispose([...gs, ...params, k.cos, k.sin, k.cosQ, k.sinQ, k.mask]);
  return { dx, grads };
}

describe('hand-written backward', () => {
  const cfg = configForStages(base, 2);
  for (const index of [0, 1]) {
    it(`equals tf.grads of the forward on stage ${index} (${index === 0 ? 'embedding + blocks' : 'blocks + head + loss'})`, () => {
      const s = new Stage(cfg, index);
      const mb = microbatch(cfg, index, 10 + index);
      const ref = autodiff(s, mb);
      const got = gradsOf(s, mb);
      if (ref.dx) expect(maxRelErr(got.dx!, ref.dx)).toBeLessThan(1e-5);
      else expect(got.dx).toBeNull();
      for (const n of Object.keys(ref.grads)) expect(maxRelErr(got.grads[n]!, ref.grads[n]!), n).toBeLessThan(1e-5);
      s.dispose();
    });
  }
});

describe('backward modes', () => {
  const cfg = configForStages(base, 2);
  it('the default is stash', () => {
    expect(new Stage(cfg, 0).backwardMode).toBe('stash');
    expect(() => new Stage(cfg, 0, { backward: 'lazy' as BackwardMode })).toThrow(/backward must be one of stash, recompute/);
  });

  for (const index of [0, 1]) {
    it(`stash and recompute give identical gradients on stage ${index}, with two microbatches in flight`, () => {
      const run = (mode: BackwardMode) => {
        const s = new Stage(cfg, index, { backward: mode });
        const [a, b] = [microbatch(cfg, index, 3), microbatch(cfg, index, 4)];
        s.forward('a', a.x, s.fullSegment(), a.y).dispose();
        s.forward('b', b.x, s.fullSegment(), b.y).dispose();
        const dxb = s.backward('b', b.dy);
        const dxa = s.backward('a', a.dy);
        const out = { dx: [dxa, dxb].map((d) => (d ? (d.dataSync() as Float32Array) : null)), grads: s.getGrads() };
        tf.dispose([dxa, dxb].filter((d): d is tf.Tensor => d !== null));
        s.dispose();
        return out;
      };
      const st = run('stash');
      const rc = run('recompute');
      expect(rc.dx).toEqual(st.dx);
      for (const n of Object.keys(st.grads)) expect(rc.grads[n], n).toEqual(st.grads[n]);
    });
  }

  it('recompute stashes one activation per microbatch; stash keeps the intermediates', () => {
    const held = (mode: BackwardMode) => {
      const s = new Stage(cfg, 1, { backward: mode });
      const mb = microbatch(cfg, 1, 5);
      s.forward('warm', mb.x, s.fullSegment(), mb.y).dispose(); // builds the rotary tables and mask
      s.abandon();
      const before = tf.memory().numBytes;
      s.forward('a', mb.x, s.fullSegment(), mb.y).dispose();
      const bytes = tf.memory().numBytes - before;
      s.dispose();
      return bytes;
    };
    const activation = B * T * cfg.dModel * 4;
    expect(held('recompute')).toBeLessThanOrEqual(activation + B * T * 4);
    expect(held('stash')).toBeGreaterThan(10 * activation);
  });
});

describe('no tensor leaks', () => {
  for (const mode of ['stash', 'recompute'] as const) {
    it(`tf.memory() does not grow over iterations of forward, backward and step (${mode}, every stage position)`, async () => {
      const cfg = configForStages(base, 4);
      const stages = [0, 1, 3].map((i) => new Stage(cfg, i, { backward: mode, lr: 1e-3 }));
      const mbs = stages.map((s) => microbatch(cfg, s.index, 20 + s.index));
      const iteration = async () => {
        for (const [i, s] of stages.entries()) {
          for (const key of ['a', 'b']) s.forward(key, mbs[i]!.x, s.fullSegment(), mbs[i]!.y).dispose();
          for (const key of ['b', 'a']) s.backward(key, mbs[i]!.dy)?.dispose();
          await s.clipAndStepAsync();
          s.infer(mbs[i]!.x).dispose();
        }
      };
      await iteration(); // builds the constants and Adam's moments
      const counts: number[] = [];
      for (let k = 0; k < 4; k++) {
        await iteration();
        counts.push(tf.memory().numTensors);
      }
      expect(new Set(counts).size, `numTensors per iteration: ${counts.join(', ')}`).toBe(1);
      stages.forEach((s) => s.dispose());
    });
  }
});

describe('wasm code paths', () => {
  it('mm and bmm with materialised transposes and per-matrix products equal cpu', async () => {
    const a2 = randomArray(6 * 5, 1);
    const b2 = randomArray(5 * 4, 2);
    const a4 = randomArray(2 * 3 * 6 * 5, 3);
    const b4 = randomArray(2 * 3 * 6 * 4, 4);
    const products = () => [
      mm(tf.tensor2d(a2, [6, 5]), tf.tensor2d(b2, [5, 4])),
      mm(tf.tensor2d(a2, [5, 6]), tf.tensor2d(b2, [5, 4]), true, false),
      mm(tf.tensor2d(a2, [6, 5]), tf.tensor2d(b2, [4, 5]), false, true),
      bmm(tf.tensor4d(a4, [2, 3, 6, 5]), tf.tensor4d(b4, [2, 3, 6, 4]), true, false),
      bmm(tf.tensor4d(a4, [2, 3, 6, 5]), tf.tensor4d(b4.subarray(0, 120), [2, 3, 4, 5]), false, true),
    ].map((t) => ({ shape: t.shape, data: t.dataSync() as Float32Array }));
    const cpu = products();
    await tf.setBackend('wasm');
    try {
      const wasm = products();
      wasm.forEach((w, i) => {
        expect(w.shape).toEqual(cpu[i]!.shape);
        expect(maxRelErr(w.data, cpu[i]!.data)).toBeLessThan(1e-5);
      });
    } finally {
      await tf.setBackend('cpu');
    }
  });

  it('a stage on wasm computes the gradients it computes on cpu', async () => {
    const cfg = configForStages(base, 2);
    const on = async (backend: string) => {
      await tf.setBackend(backend);
      const out = [0, 1].map((i) => {
        const s = new Stage(cfg, i);
        const g = gradsOf(s, microbatch(cfg, i, 30 + i));
        s.dispose();
        return g;
      });
      await tf.setBackend('cpu');
      return out;
    };
    const cpu = await on('cpu');
    const wasm = await on('wasm');
    for (const i of [0, 1]) {
      if (cpu[i]!.dx) expect(maxRelErr(wasm[i]!.dx!, cpu[i]!.dx!)).toBeLessThan(1e-4);
      for (const n of Object.keys(cpu[i]!.grads)) expect(maxRelErr(wasm[i]!.grads[n]!, cpu[i]!.grads[n]!), n).toBeLessThan(1e-4);
    }
  });
});
