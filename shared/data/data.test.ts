import { describe, it, expect } from 'vitest';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ByteTokenizer, getTokenizer, TokenizerError } from './tokenizer.js';
import { TokenDataset, DataError } from './dataset.js';
import { DEFAULT_CORPUS, loadDataset, readTextFile } from '../../trainer/corpus-file.js';

describe('byte tokenizer', () => {
  it('round-trips UTF-8 text', () => {
    const t = new ByteTokenizer();
    const s = 'Call me Ishmael — naïve whale 🐋';
    const ids = t.encode(s);
    expect(Math.max(...ids)).toBeLessThan(256);
    expect(t.decode(ids)).toBe(s);
  });
  it('unknown tokenizer is a clear error', () => {
    expect(() => getTokenizer('bpe-32k.json')).toThrow(TokenizerError);
    expect(() => getTokenizer('bpe-32k.json')).toThrow(/tokenizer "bpe-32k.json" needs a corpus or a file/);
  });
});

describe('dataset', () => {
  it('ships a real corpus of at least 1 MB', () => {
    const text = readTextFile(DEFAULT_CORPUS);
    expect(Buffer.byteLength(text)).toBeGreaterThanOrEqual(1_000_000);
    expect(text).toContain('Call me Ishmael');
  });

  it('splits train/validation and makes next-token windows', () => {
    const { dataset } = loadDataset({ seqLen: 16 });
    expect(dataset.valTokens).toBeGreaterThan(100_000);
    const b = dataset.trainBatch(1, 0, 0, 4);
    expect(b.tokens.length).toBe(64);
    for (let i = 0; i < 4; i++) {
      // targets are the inputs shifted by one within each window
      expect(Array.from(b.targets.subarray(i * 16, i * 16 + 15))).toEqual(Array.from(b.tokens.subarray(i * 16 + 1, i * 16 + 16)));
    }
    expect(dataset.trainBatch(1, 0, 0, 4)).toEqual(b);
    expect(dataset.trainBatch(1, 0, 1, 4).tokens).not.toEqual(b.tokens);
    const v = dataset.valBatches(3, 2);
    expect(v).toHaveLength(3);
    expect(dataset.valBatches(3, 2)).toEqual(v);
  });

  it('takes any UTF-8 file and rejects missing, empty, non-UTF-8 and too-short files clearly', () => {
    const dir = mkdtempSync(join(tmpdir(), 'corpus-'));
    const ok = join(dir, 'ok.txt');
    writeFileSync(ok, 'hello world, '.repeat(200));
    expect(loadDataset({ path: ok, seqLen: 8 }).dataset.trainTokens).toBeGreaterThan(0);
    expect(() => loadDataset({ path: join(dir, 'nope.txt'), seqLen: 8 })).toThrow(/no such file/);
    const empty = join(dir, 'empty.txt');
    writeFileSync(empty, '');
    expect(() => loadDataset({ path: empty, seqLen: 8 })).toThrow(/empty/);
    const bin = join(dir, 'bin.txt');
    writeFileSync(bin, Buffer.from([0xff, 0xfe, 0x00, 0xc3]));
    expect(() => loadDataset({ path: bin, seqLen: 8 })).toThrow(/not valid UTF-8/);
    const short = join(dir, 'short.txt');
    writeFileSync(short, 'tiny text');
    expect(() => loadDataset({ path: short, seqLen: 8 })).toThrow(DataError);
    expect(() => new TokenDataset(new Int32Array(10), 4, 0)).toThrow(/valFraction/);
  });
});
