import { describe, it, expect } from 'vitest';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { loadDataset, prepareDataset, DEFAULT_CORPUS } from '../corpus-file.js';
import { DataError } from '../../shared/data/dataset.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'corpus-'));
/** Nothing of a failed build is left in the cache folder (no .tokens, no .json, no temporaries). */
const leftovers = (dir: string) => {
  try {
    return readdirSync(dir).filter((f) => !f.endsWith('.tokenizer.json'));
  } catch {
    return [];
  }
};

describe('prepareDataset', () => {
  it('byte tokens from the disk cache give exactly the batches of the in-memory loader', async () => {
    const cacheDir = tmp();
    const p = await prepareDataset({ seqLen: 32, cacheDir });
    const m = loadDataset({ seqLen: 32 });
    expect(p.built).toBe(true);
    expect(p.dataset.trainTokens).toBe(m.dataset.trainTokens);
    expect(p.dataset.valTokens).toBe(m.dataset.valTokens);
    expect(p.meta.textBytes).toBe(readFileSync(DEFAULT_CORPUS).length);
    for (const it of [0, 7, 123]) expect(p.dataset.trainBatch(1234, it, 1, 4)).toEqual(m.dataset.trainBatch(1234, it, 1, 4));
    expect(p.dataset.valBatches(3, 2)).toEqual(m.dataset.valBatches(3, 2));
    p.close();
    const again = await prepareDataset({ seqLen: 32, cacheDir });
    expect(again.built).toBe(false);
    expect(again.corpusHash).toBe(p.corpusHash);
    again.close();
  });

  it('reads a folder of text and gzip files, and JSON Lines (plain or gzip) by field, in path order', async () => {
    const dir = tmp();
    const folder = join(dir, 'texts');
    mkdirSync(join(folder, 'sub'), { recursive: true });
    const a = 'First file, line one.\nline two\n'.repeat(20);
    const b = 'Zweite Datei — gzip, naïve 🐋\n'.repeat(20);
    writeFileSync(join(folder, 'a.txt'), a);
    writeFileSync(join(folder, 'sub', 'b.txt.gz'), gzipSync(b));
    writeFileSync(join(folder, '.hidden'), 'skipped');
    const p = await prepareDataset({ path: folder, seqLen: 8, cacheDir: join(dir, 'cache') });
    const all = p.dataset.tokens.read(0, p.dataset.tokens.length);
    expect(Buffer.from(Uint8Array.from(all)).toString('utf8')).toBe(a + b);
    p.close();

    const records = ['one document', 'another "quoted" one', 'ünïcödé'].map((text, i) => JSON.stringify({ id: i, text }));
    const jsonl = records.join('\n').repeat(1) + '\n\n';
    writeFileSync(join(dir, 'd.jsonl'), jsonl.repeat(5));
    writeFileSync(join(dir, 'd.jsonl.gz'), gzipSync(jsonl.repeat(5)));
    const plain = await prepareDataset({ path: join(dir, 'd.jsonl'), field: 'text', seqLen: 8, cacheDir: join(dir, 'cache') });
    const zipped = await prepareDataset({ path: join(dir, 'd.jsonl.gz'), field: 'text', seqLen: 8, cacheDir: join(dir, 'cache') });
    const text = (d: typeof plain) => Buffer.from(Uint8Array.from(d.dataset.tokens.read(0, d.dataset.tokens.length))).toString('utf8');
    expect(text(plain)).toBe('one document\n\nanother "quoted" one\n\nünïcödé\n\n'.repeat(5));
    expect(text(zipped)).toBe(text(plain));
    plain.close();
    zipped.close();
  });

  it('bad input is a DataError naming the file and line, and leaves nothing half-built', async () => {
    const dir = tmp();
    const cacheDir = join(dir, 'cache');
    const write = (name: string, data: string | Buffer) => {
      writeFileSync(join(dir, name), data);
      return join(dir, name);
    };
    const fails = async (o: { path: string; field?: string }, re: RegExp) => {
      await expect(prepareDataset({ ...o, seqLen: 4, cacheDir })).rejects.toThrow(re);
      await expect(prepareDataset({ ...o, seqLen: 4, cacheDir })).rejects.toBeInstanceOf(DataError);
      expect(leftovers(cacheDir)).toEqual([]);
    };
    const long = 'a fine line of text\n'.repeat(10);
    await fails({ path: write('bad.txt', Buffer.concat([Buffer.from(long), Buffer.from([0x66, 0xff, 0xfe, 0x0a])])) }, /bad\.txt:11: not valid UTF-8/);
    await fails({ path: write('empty.txt', '') }, /empty\.txt" is empty/);
    await fails({ path: join(dir, 'missing.txt') }, /no such file or folder/);
    await fails({ path: write('r.jsonl', '{"text":"ok"}\n{"body":"no text"}\n'), field: 'text' }, /r\.jsonl:2: the record has no string field "text"/);
    await fails({ path: write('j.jsonl', '{"text":"ok"}\n\n{"text": nope}\n'), field: 'text' }, /j\.jsonl:3: not a JSON line/);
    const gz = gzipSync(long.repeat(200));
    await fails({ path: write('cut.txt.gz', gz.subarray(0, gz.length - 40)) }, /cut\.txt\.gz: corrupt gzip/);
    const flipped = Buffer.from(gz);
    flipped[40] ^= 0xff;
    await fails({ path: write('flip.txt.gz', flipped) }, /flip\.txt\.gz: corrupt gzip/);
    mkdirSync(join(dir, 'none'));
    await fails({ path: join(dir, 'none') }, /holds no files/);
  });

  it('bpe:N is trained once per corpus, cached, and gives the same tokens again; a changed corpus gets its own', async () => {
    const dir = tmp();
    const cacheDir = join(dir, 'cache');
    const path = join(dir, 'c.txt');
    writeFileSync(path, readFileSync(DEFAULT_CORPUS, 'utf8').slice(0, 100_000));
    const a = await prepareDataset({ path, tokenizer: 'bpe:512', seqLen: 16, cacheDir });
    expect(a.tokenizer.vocabSize).toBe(512);
    expect(a.meta.tokens).toBeLessThan(a.meta.textBytes / 2);
    const b = await prepareDataset({ path, tokenizer: 'bpe:512', seqLen: 16, cacheDir });
    expect(b.built).toBe(false);
    expect(b.tokenizerHash).toBe(a.tokenizerHash);
    expect(b.dataset.trainBatch(1, 2, 3, 2)).toEqual(a.dataset.trainBatch(1, 2, 3, 2));
    expect(a.tokenizer.decode(a.dataset.tokens.read(0, 50))).toBe(readFileSync(path, 'utf8').slice(0, a.tokenizer.decode(a.dataset.tokens.read(0, 50)).length));
    writeFileSync(path, readFileSync(DEFAULT_CORPUS, 'utf8').slice(100_000, 200_000));
    const c = await prepareDataset({ path, tokenizer: 'bpe:512', seqLen: 16, cacheDir });
    expect(c.built).toBe(true);
    expect(c.corpusHash).not.toBe(a.corpusHash);
    expect(c.tokenizerHash).not.toBe(a.tokenizerHash);
    [a, b, c].forEach((d) => d.close());
    await expect(prepareDataset({ path, tokenizer: 'bpe:12', seqLen: 16, cacheDir })).rejects.toThrow(/vocabulary must be/);
    await expect(prepareDataset({ path, tokenizer: join(dir, 'nope.json'), seqLen: 16, cacheDir })).rejects.toThrow(/no such file; --tokenizer takes/);
  });
});
