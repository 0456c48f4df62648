import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from './tf.js';
import { configForStages } from './config.js';
import { measureMatmul, measureStage, stageFlops } from './roofline.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

const base = { vocabSize: 32, dModel: 16, nHeads: 2, nLayers: 4, seqLen: 8, seed: 7 };

describe('roofline', () => {
  it('counts a stage\'s matmul FLOPs from the config', () => {
    const cfg = configForStages(base, 4); // one block per stage, ffHidden 64
    const N = 2 * 8;
    const block = 2 * N * (4 * 16 * 16 + 3 * 16 * 64) + 2 * 2 * 2 * 2 * 8 * 8 * 8; // linears + attention (B 2, H 2, T 8, K 8)
    const head = 2 * N * 16 * 32;
    expect(stageFlops(cfg, 1, 2)).toEqual({ forward: block, backward: 2 * block });
    expect(stageFlops(cfg, 3, 2)).toEqual({ forward: block + head, backward: 2 * (block + head) });
    expect(stageFlops(cfg, 0, 2)).toEqual({ forward: block, backward: 2 * block + head });
  });

  it('measures every stage position without leaking tensors', async () => {
    const cfg = configForStages(base, 4);
    const before = tf.memory().numTensors;
    for (const index of [0, 1, 3]) {
      const t = await measureStage(cfg, index, { batch: 2, reps: 2, backward: 'stash' });
      for (const v of [t.forwardMs, t.backwardMs, t.stepMs]) expect(v).toBeGreaterThan(0);
      expect(t.stashBytes).toBeGreaterThan(0);
      expect(t.peakBytes).toBeGreaterThanOrEqual(t.stashBytes);
    }
    expect(await measureMatmul(16, 8, 32, { reps: 2, transposeA: true })).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBe(before);
  });
});
