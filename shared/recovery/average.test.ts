import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '../model/tf.js';
import { checkfreeAverage, averageWeights, AVERAGE_WEIGHTINGS, NORM_EPS } from './average.js';
import { RecoveryError } from './errors.js';
import { Stage, type NamedWeights } from '../model/stage.js';
import { configForStages } from '../model/config.js';
import { isBlockParam } from '../model/params.js';
import { mulberry32 } from '../model/rng.js';

const f32 = (xs: number[]) => Float32Array.from(xs);

// Two stages' blocks (2 tensors of 3 values each), plus parts that must be ignored.
const prev: NamedWeights = {
  'embed.weight': f32([9, 9, 9, 9]),
  'blocks.0.x': f32([1, 2, 3]),
  'blocks.0.y': f32([-1, 0, 4]),
};
const next: NamedWeights = {
  'blocks.0.x': f32([3, 2, 1]),
  'blocks.0.y': f32([1, 1, 0]),
  'head.lm_head': f32([7, 7]),
};
const normPrev = { preClipNorm: 0.5, postClipNorm: 0.5 };
const normNext = { preClipNorm: 3.0, postClipNorm: 1.5 };

// Hand computation of (a * next + b * prev) / (a + b) for each weighting.
const cases = [
  { weighting: 'post-clip', a: 1.5001, b: 0.5001, x: [2.49995000499950, 2, 1.50004999500050], y: [0.49995000499950, 0.74997500249975, 1.000099990001] },
  { weighting: 'pre-clip', a: 3.0001, b: 0.5001, x: [2.71424490029141, 2, 1.28575509970859], y: [0.71424490029141, 0.85712245014571, 0.57151019941718] },
  { weighting: 'squared', a: 2.2501, b: 0.2501, x: [2.79993600511959, 2, 1.20006399488041], y: [0.79993600511959, 0.89996800255980, 0.40012798976082] },
  { weighting: 'uniform', a: 1, b: 1, x: [2, 2, 2], y: [0, 0.5, 2] },
] as const;

describe('checkfreeAverage', () => {
  for (const c of cases) {
    it(`${c.weighting}: matches the hand computation`, () => {
      const r = checkfreeAverage(prev, next, normPrev, normNext, c.weighting);
      expect(r.weighting).toBe(c.weighting);
      expect(r.a).toBeCloseTo(c.a, 10);
      expect(r.b).toBeCloseTo(c.b, 10);
      expect(Object.keys(r.weights).sort()).toEqual(['blocks.0.x', 'blocks.0.y']);
      expect(r.weights['blocks.0.x']).toBeInstanceOf(Float32Array);
      c.x.forEach((v, i) => expect(r.weights['blocks.0.x']![i]).toBeCloseTo(v, 6));
      c.y.forEach((v, i) => expect(r.weights['blocks.0.y']![i]).toBeCloseTo(v, 6));
    });
  }

  it('defaults to post-clip and leaves its inputs untouched', () => {
    const r = checkfreeAverage(prev, next, normPrev, normNext);
    expect(r.weighting).toBe('post-clip');
    expect(r.a).toBeCloseTo(1.5 + NORM_EPS, 12);
    expect([...prev['blocks.0.x']!]).toEqual([1, 2, 3]);
    expect(r.weights['blocks.0.x']).not.toBe(prev['blocks.0.x']);
  });

  it('gives the neighbour with the larger norm the larger share', () => {
    const r = checkfreeAverage({ 'blocks.0.w': f32([0]) }, { 'blocks.0.w': f32([1]) }, { preClipNorm: 0.1, postClipNorm: 0.1 }, { preClipNorm: 0.9, postClipNorm: 0.9 });
    expect(r.weights['blocks.0.w']![0]).toBeCloseTo(0.9 / 1.0, 3);
  });

  it('post-clip weighs two neighbours with raw norms above 1 the same (pre-clip does not)', () => {
    const np = { preClipNorm: 2, postClipNorm: 1 };
    const nn = { preClipNorm: 8, postClipNorm: 1 };
    expect(averageWeights(np, nn, 'post-clip')).toMatchObject({ a: 1 + NORM_EPS, b: 1 + NORM_EPS });
    expect(averageWeights(np, nn, 'pre-clip')).toMatchObject({ a: 8 + NORM_EPS, b: 2 + NORM_EPS });
  });

  it('falls back to uniform when a norm is missing or not finite', () => {
    for (const [p, n] of [
      [null, normNext],
      [normPrev, null],
      [null, null],
      [{ preClipNorm: NaN, postClipNorm: NaN }, normNext],
    ] as const) {
      for (const w of AVERAGE_WEIGHTINGS) {
        const r = checkfreeAverage(prev, next, p, n, w);
        expect(r).toMatchObject({ a: 1, b: 1, weighting: 'uniform' });
        expect([...r.weights['blocks.0.y']!]).toEqual([0, 0.5, 2]);
      }
    }
  });

  it('refuses neighbours whose block names differ', () => {
    const extra = { ...next, 'blocks.1.x': f32([0, 0, 0]) };
    expect(() => checkfreeAverage(prev, extra, normPrev, normNext)).toThrow(RecoveryError);
    expect(() => checkfreeAverage(prev, extra, normPrev, normNext)).toThrow(/only in next stage: blocks\.1\.x/);
    const { 'blocks.0.y': _drop, ...missing } = next;
    expect(() => checkfreeAverage(prev, missing, normPrev, normNext)).toThrow(/only in previous stage: blocks\.0\.y/);
  });

  it('refuses a tensor whose lengths differ', () => {
    const short = { ...next, 'blocks.0.y': f32([1, 1]) };
    expect(() => checkfreeAverage(prev, short, normPrev, normNext)).toThrow(RecoveryError);
    expect(() => checkfreeAverage(prev, short, normPrev, normNext)).toThrow(/"blocks\.0\.y": previous stage has 3 values, next stage has 2/);
  });

  it('refuses neighbours without block tensors and unknown weightings', () => {
    expect(() => checkfreeAverage({ 'embed.weight': f32([1]) }, {}, null, null)).toThrow(/no block parameters/);
    expect(() => checkfreeAverage(prev, next, normPrev, normNext, 'cubic' as never)).toThrow(/unknown averaging weighting "cubic"/);
  });
});

describe('weighting by the block part of the gradient', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
    await tf.ready();
  });

  it('a neighbour with a large head gradient but the same block gradient as the other gets a = b', () => {
    // Stage i+1 holds the head: its whole-stage norm is clipped to 1 and dominated by the head.
    const nextWithHead = { preClipNorm: 12, postClipNorm: 1, blockNorm: 0.05 };
    const prevBlocksOnly = { preClipNorm: 0.05, postClipNorm: 0.05, blockNorm: 0.05 };
    const r = averageWeights(prevBlocksOnly, nextWithHead, 'post-clip');
    expect(r.a).toBeCloseTo(r.b, 12);
    expect(r.wholeStage).toBe(false);
    // Weighed by the whole-stage norm instead (an old tab's ack), the head's neighbour would win ~95%.
    const old = averageWeights(prevBlocksOnly, { preClipNorm: 12, postClipNorm: 1 }, 'post-clip');
    expect(old.a / (old.a + old.b)).toBeGreaterThan(0.9);
    expect(old.wholeStage).toBe(true);
  });

  it('pre-clip and squared use the block norm too', () => {
    const n = { preClipNorm: 4, postClipNorm: 1, blockNorm: 0.5 }; // clip coefficient 1/4: raw block norm 2
    const p = { preClipNorm: 0.5, postClipNorm: 0.5, blockNorm: 0.5 };
    expect(averageWeights(p, n, 'pre-clip')).toMatchObject({ a: 2 + NORM_EPS, b: 0.5 + NORM_EPS });
    expect(averageWeights(p, n, 'squared')).toMatchObject({ a: 0.25 + NORM_EPS, b: 0.25 + NORM_EPS });
  });

  it('the block norm a stage records is its block gradient scaled by the stage clip coefficient', () => {
    // One stage holding embedding, blocks and head, a learning rate of 0 (the step changes nothing).
    const cfg = configForStages({ vocabSize: 32, dModel: 16, nHeads: 2, nLayers: 2, seqLen: 8, seed: 3 }, 1);
    const stage = new Stage(cfg, 0, { lr: 1e-9 });
    const r = mulberry32(5);
    const ids = tf.tensor2d(Int32Array.from({ length: 16 }, () => Math.floor(r() * 32)), [2, 8], 'int32');
    const targets = tf.tensor2d(Int32Array.from({ length: 16 }, () => Math.floor(r() * 32)), [2, 8], 'int32');
    stage.forward('k', ids, stage.fullSegment(), targets).dispose();
    stage.backward('k', 40)?.dispose(); // a large loss scale: the whole-stage norm exceeds 1 and is clipped
    const grads = stage.getGrads();
    const norm = (names: string[]) => Math.sqrt(names.reduce((acc, n) => acc + grads[n]!.reduce((a, x) => a + x * x, 0), 0));
    const all = norm(Object.keys(grads));
    const blocks = norm(Object.keys(grads).filter(isBlockParam));
    const got = stage.clipAndStep();
    expect(all).toBeGreaterThan(1);
    expect(got.preClipNorm).toBeCloseTo(all, 3);
    expect(got.postClipNorm).toBeCloseTo(1, 5);
    expect(got.blockNorm!).toBeCloseTo(blocks / all, 5);
    expect(got.blockNorm!).toBeLessThan(got.postClipNorm);
    ids.dispose();
    targets.dispose();
    stage.dispose();
  });
});
