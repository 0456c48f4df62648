import { describe, it, expect, beforeAll } from 'vitest';
import { useNodeBackend } from './node-backend.js';
import { trainLocal } from './cli.js';
import { DEFAULT_SETTINGS } from '../shared/run-settings.js';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CORPUS } from './corpus-file.js';

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
    await expect(trainLocal({ ...base, tokenizer: 'gpt2.json' })).rejects.toThrow(/--tokenizer "gpt2.json": no such file/);
    await expect(trainLocal({ ...base, data: '/nonexistent/corpus.txt' })).rejects.toThrow(/no such file/);
  });

  it('takes its vocabulary from the tokenizer: bpe:N trained on the corpus, then the same tokenizer.json by path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trainer-'));
    const data = join(dir, 'c.txt');
    writeFileSync(data, readFileSync(DEFAULT_CORPUS, 'utf8').slice(0, 60_000));
    const base = { ...DEFAULT_SETTINGS, steps: 1, evalEvery: 1, evalBatches: 1, swap: false, data, cacheDir: join(dir, 'cache') };
    const bpe = await trainLocal({ ...base, tokenizer: 'bpe:512' });
    expect(bpe.vocabSize).toBe(512);
    expect(Math.abs(bpe.initialValLoss - Math.log(512))).toBeLessThan(0.3); // uniform over 512 tokens at init
    expect(bpe.bytesPerToken).toBeGreaterThan(2);
    const json = readdirSync(join(dir, 'cache')).find((f) => f.endsWith('.tokenizer.json'))!;
    const byPath = await trainLocal({ ...base, tokenizer: join(dir, 'cache', json) });
    expect(byPath.vocabSize).toBe(512);
    expect(byPath.initialValLoss).toBe(bpe.initialValLoss);
  });
});
