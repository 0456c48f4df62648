/** The history cache reads a checkpoint's stage once, again when the file changed, and forgets checkpoints no longer kept. */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpsrHistoryCache } from './cpsr-history-cache.js';
import type { CheckpointRecord } from '../record/store.js';

function checkpoint(root: string, iteration: number): CheckpointRecord {
  const dir = join(root, `iter-${iteration}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'stage-1.bin'), new Uint8Array(8));
  return { run: 'r', iteration, dir, files: [{ file: 'stage-1.bin', bytes: 8, sha256: 'x' }], bytes: 8, seconds: 0, time: 0 };
}

describe('CpsrHistoryCache', () => {
  it('loads once, again after the file changed, and drops what is no longer kept', () => {
    const root = mkdtempSync(join(tmpdir(), 'cpsr-cache-'));
    const a = checkpoint(root, 4);
    const b = checkpoint(root, 8);
    const cache = new CpsrHistoryCache();
    let loads = 0;
    const load = () => (loads++, new Float32Array([loads]));
    expect(cache.get(1, a, load)[0]).toBe(1);
    expect(cache.get(1, a, load)[0]).toBe(1);
    expect(loads).toBe(1);
    writeFileSync(join(a.dir, 'stage-1.bin'), new Uint8Array(3)); // rewritten: size differs
    expect(cache.get(1, a, load)[0]).toBe(2);
    utimesSync(join(a.dir, 'stage-1.bin'), new Date(), new Date(Date.now() + 5000)); // touched: mtime differs
    expect(cache.get(1, a, load)[0]).toBe(3);
    cache.get(1, b, load);
    expect(loads).toBe(4);
    cache.retain([b]);
    cache.get(1, b, load);
    expect(loads).toBe(4);
    cache.get(1, a, load);
    expect(loads).toBe(5);
  });

  it('a load that throws caches nothing and throws to the caller', () => {
    const root = mkdtempSync(join(tmpdir(), 'cpsr-cache-'));
    const a = checkpoint(root, 4);
    const cache = new CpsrHistoryCache();
    expect(() => cache.get(1, a, () => { throw new Error('bad file'); })).toThrow('bad file');
    expect(cache.get(1, a, () => new Float32Array([7]))[0]).toBe(7);
  });
});
