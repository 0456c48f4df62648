import { describe, it, expect, beforeAll } from 'vitest';
import { useNodeBackend } from './node-backend.js';
import { trainLocal } from './cli.js';
import { DEFAULT_SETTINGS } from '../shared/run-settings.js';

beforeAll(async () => {
  // wasm is tfjs's CPU backend built with XNNPACK; the plain-JS `cpu` backend is 5-14x slower.
  await useNodeBackend('wasm');
});

describe('local trainer', () => {
  it('drops validation loss by at least 30% on the shipped corpus (tiny: d_model 64, 4 stages, seq 64)', async () => {
    const r = await trainLocal({
      ...DEFAULT_SETTINGS,
      preset: 'tiny',
      stages: 4,
      steps: 25,
      evalEvery: 25,
      evalBatches: 4,
      swap: false,
    });
    expect(r.initialValLoss).toBeGreaterThan(5); // ~ln(256) at init
    expect(r.finalValLoss).toBeLessThanOrEqual(0.7 * r.initialValLoss);
  });

  it('rejects bad settings with a clear message', async () => {
    const base = { ...DEFAULT_SETTINGS, steps: 1, evalEvery: 1, evalBatches: 1, swap: false };
    await expect(trainLocal({ ...base, stages: 3 })).rejects.toThrow(/stages \(3\) must divide the layer count \(4\)/);
    await expect(trainLocal({ ...base, stages: 8 })).rejects.toThrow(/more stages \(8\) than layers \(4\)/);
    await expect(trainLocal({ ...base, tokenizer: 'gpt2.json' })).rejects.toThrow(/unknown tokenizer "gpt2.json"/);
    await expect(trainLocal({ ...base, data: '/nonexistent/corpus.txt' })).rejects.toThrow(/no such file/);
  });
});
