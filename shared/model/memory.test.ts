import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from './tf.js';
import { configForStages, getPreset, PRESET_STAGES } from './config.js';
import { measureStage } from './roofline.js';
import { stageMemory, modelMemory, fitsDevice, formatModelMemory } from './memory.js';
import { Stage } from './stage.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

describe('stage memory', () => {
  const cfg = configForStages({ vocabSize: 96, dModel: 16, nHeads: 2, nLayers: 6, seqLen: 8, seed: 7 }, 3);

  it('weights equal the stage\'s real parameter count; Adam twice, gradients once', () => {
    for (const i of [0, 1, 2]) {
      const stage = new Stage(cfg, i, { lr: 1e-3 });
      const real = Object.values(stage.getWeights()).reduce((a, w) => a + (w as Float32Array).length, 0);
      stage.dispose();
      const m = stageMemory(cfg, i, { batch: 2 });
      expect(m.params).toBe(real);
      expect(m.adamBytes).toBe(2 * 4 * real);
      expect(m.gradBytes).toBe(4 * real);
      expect(m.inFlight).toBe(3 - i);
      expect(m.totalBytes).toBe(m.weightBytes + m.adamBytes + m.gradBytes + m.stashBytes);
    }
  });

  it('the counted stash is exactly what tfjs holds between forward and backward', async () => {
    for (const i of [0, 1, 2]) {
      const measured = (await measureStage(cfg, i, { batch: 2, reps: 1, backward: 'stash' })).stashBytes;
      const counted = stageMemory(cfg, i, { batch: 2 }).stashBytesPerMicrobatch;
      expect(counted).toBe(measured);
      const rec = (await measureStage(cfg, i, { batch: 2, reps: 1, backward: 'recompute' })).stashBytes;
      expect(stageMemory(cfg, i, { batch: 2, backward: 'recompute' }).stashBytesPerMicrobatch).toBeGreaterThanOrEqual(rec);
    }
  });

  it('paper presets: 4 and 12 stages, sizes from the config; a small device is told why not', () => {
    const p124 = configForStages({ ...getPreset('paper-124m'), vocabSize: 4096 }, PRESET_STAGES['paper-124m']!);
    const rows = modelMemory(p124, { batch: 1 });
    expect(rows).toHaveLength(4);
    // middle stage: 3 blocks of 4 D^2 + 3 D F + 2 D parameters
    expect(rows[1]!.params).toBe(3 * (4 * 512 * 512 + 3 * 512 * 2048 + 2 * 512));
    expect(rows[0]!.params).toBe(rows[1]!.params + 4096 * 512);
    expect(formatModelMemory(rows)).toMatch(/stage  3/);
    const p500 = configForStages({ ...getPreset('paper-500m'), vocabSize: 32000 }, PRESET_STAGES['paper-500m']!);
    const r500 = modelMemory(p500, { batch: 1, microbatches: 4 });
    expect(r500).toHaveLength(12);
    expect(r500.map((r) => r.inFlight)).toEqual([4, 4, 4, 4, 4, 4, 4, 4, 4, 3, 2, 1]); // 1F1B never holds more than M
    const last = stageMemory(p500, 11, { batch: 4 });
    expect(last.largestTensorBytes).toBe(4 * 1024 * 32000 * 4); // logits [B*T, V]
    expect(fitsDevice(last, { maxBufferSize: 256 * 2 ** 20 })).toMatch(/maxBufferSize/);
    expect(fitsDevice(last, { maxBufferSize: 2 ** 31, memoryBytes: 2 ** 30 })).toMatch(/\(memory\)/);
    expect(fitsDevice(last, { maxBufferSize: 2 ** 31, memoryBytes: 2 ** 34 })).toBeNull();
  });
});
