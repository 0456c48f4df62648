/**
 * The predictor on known trajectories: it must beat the plain restore (the last checkpoint) on a
 * trend with noise at unequal checkpoint intervals, and refuse to predict (with the reason) when
 * there is too little history or nothing to learn (a driftless random walk).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '../../model/tf.js';
import '@tensorflow/tfjs-backend-wasm';
import { mulberry32 } from '../../model/rng.js';
import { CheckpointHistory } from './history.js';
import { CpsrPredictor, DEFAULT_PREDICTOR, minCheckpoints } from './predictor.js';
import { CpsrError } from './errors.js';

beforeAll(async () => {
  // wasm (registered by the import above): the cpu backend makes these fits 4x slower
  tf.enableProdMode();
  await tf.setBackend('wasm');
});

const N = 3000;
const ITERS = [0, 10, 20, 30, 45, 55, 65, 80, 90, 100]; // unequal intervals

function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(Math.max(rand(), 1e-12))) * Math.cos(2 * Math.PI * rand());
}

/** Decelerating drift per parameter (chunks of different speeds) plus i.i.d. noise per checkpoint. */
function trend(seed: number) {
  const rand = mulberry32(seed);
  const a = Float64Array.from({ length: N }, () => gaussian(rand));
  const b = Float64Array.from({ length: N }, (_, p) => gaussian(rand) * 0.01 * (1 + Math.floor(p / 500)));
  const truth = (p: number, t: number) => a[p]! + b[p]! * 60 * (1 - Math.exp(-t / 60));
  const noisy = (t: number, sigma: number) => Float32Array.from({ length: N }, (_, p) => truth(p, t) + sigma * Math.abs(b[p]!) * gaussian(rand));
  return { truth, noisy };
}

const sq = (x: Float32Array, ref: (p: number) => number) => x.reduce((s, v, p) => s + (v - ref(p)) ** 2, 0);

describe('CpsrPredictor', () => {
  it('beats the last checkpoint on a noisy decelerating trend with unequal intervals', () => {
    const { truth, noisy } = trend(1);
    const h = new CheckpointHistory({ capacity: 16, maxBytes: 1 << 24 });
    for (const t of ITERS) h.add(t, noisy(t, 0.5));
    const p = new CpsrPredictor(DEFAULT_PREDICTOR);
    const fit = p.fit(h);
    expect(fit.usable, JSON.stringify(fit)).toBe(true);
    for (const target of [104, 110]) {
      const pred = p.predict(h, target);
      expect(pred.predicted).toBe(true);
      const errPred = sq(pred.state, (q) => truth(q, target));
      const errLast = sq(h.last!.state, (q) => truth(q, target));
      // the last checkpoint is off by the drift since it was taken (plus its noise)
      expect(errPred, `target ${target}`).toBeLessThan(0.5 * errLast);
    }
    p.dispose();
  });

  it('falls back to the plain restore with the reason: too little history, then a driftless walk', () => {
    const p = new CpsrPredictor({ ...DEFAULT_PREDICTOR, steps: 80, finetuneSteps: 0 });
    const h = new CheckpointHistory({ capacity: 16, maxBytes: 1 << 24 });
    const rand = mulberry32(5);
    let x = Float32Array.from({ length: N }, () => gaussian(rand));
    for (let i = 0; i < minCheckpoints(DEFAULT_PREDICTOR) - 1; i++) h.add(i * 10, x);
    const few = p.fit(h);
    expect(few.usable).toBe(false);
    expect(!few.usable && few.reason).toMatch(/too little history: 5 checkpoint\(s\), the predictor needs 6/);
    const r = p.predict(h, 47);
    expect(r.predicted).toBe(false);
    expect(r.state).toEqual(h.last!.state);
    expect(r.horizon).toBe(7);
    // a random walk without drift: the displacement is unpredictable, the best guess is no move
    for (let i = h.size; i < 12; i++) {
      x = x.map((v) => v + 0.01 * gaussian(rand));
      h.add(i * 10, x);
    }
    const walk = p.fit(h);
    expect(walk.usable, JSON.stringify(walk)).toBe(false);
    expect(!walk.usable && walk.reason).toMatch(/validation error .* above the bound 0.9/);
    expect(p.predict(h, 115).predicted).toBe(false);
    p.dispose();
  });

  it('a prediction at the checkpoint itself, or for a history it was not fitted on, is the plain restore', () => {
    const { noisy } = trend(2);
    const h = new CheckpointHistory({ capacity: 16, maxBytes: 1 << 24 });
    for (const t of ITERS) h.add(t, noisy(t, 1));
    const p = new CpsrPredictor({ ...DEFAULT_PREDICTOR, steps: 60, finetuneSteps: 0 });
    expect(p.predict(h, 105)).toMatchObject({ predicted: false, reason: 'the predictor has not been fitted yet' });
    p.fit(h);
    expect(p.predict(h, 100)).toMatchObject({ predicted: false, horizon: 0 });
    // a fit serves maxFitAge (3) more checkpoints, then it is too old
    for (const t of [110, 120, 130]) {
      h.add(t, noisy(t, 1));
      expect(p.predict(h, t + 5).predicted, `after checkpoint ${t}`).toBe(true);
    }
    h.add(140, noisy(140, 1));
    expect(p.predict(h, 145)).toMatchObject({ predicted: false, reason: expect.stringMatching(/fitted on history up to iteration 100, more than 3 checkpoint\(s\) before the last one \(140\)/) });
    expect(() => p.predict(h, 99)).toThrow(CpsrError);
    p.dispose();
  });
});
