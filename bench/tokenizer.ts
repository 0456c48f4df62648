/**
 * Tokenizers and big corpora, two figures:
 *
 * 1. Loss per byte of text, `byte` vs `bpe:N`, in equal wall time: the local trainer (tiny
 *    preset by default) trains each tokenizer for `--seconds` on the shipped corpus, then its
 *    validation loss in nats per token is divided by the tokenizer's bytes per token, giving bits
 *    per byte of text (comparable across tokenizers; lower is better).
 * 2. Coordinator memory with a corpus bigger than it should hold: a generated corpus of
 *    `--corpus-mb` MiB (shuffled Moby Dick lines, gzip) is tokenised into the on-disk cache
 *    while RSS is sampled, then batches are drawn from it by positional reads.
 *
 *   npm run bench:tokenizer
 *   npm run bench:tokenizer -- --seconds 120 --bpe 4096 --preset small --corpus-mb 1024
 *   npm run bench:tokenizer -- --skip-loss     (memory only)
 */
import { mkdtempSync, readFileSync, rmSync, statSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGzip } from 'node:zlib';
import { once } from 'node:events';
import { useNodeBackend } from '../trainer/node-backend.js';
import { trainLocal } from '../trainer/cli.js';
import { DEFAULT_CORPUS, prepareDataset } from '../trainer/corpus-file.js';
import { DEFAULT_SETTINGS } from '../shared/run-settings.js';
import { mulberry32 } from '../shared/model/rng.js';
import { flags, fmt, machine, table } from './util.js';

const f = flags(process.argv.slice(2), {
  seconds: 'string',
  bpe: 'string',
  preset: 'string',
  'corpus-mb': 'string',
  'skip-loss': 'boolean',
  'skip-memory': 'boolean',
});
const seconds = Number(f.seconds ?? 60);
const bpe = `bpe:${Number(f.bpe ?? 4096)}`;
const preset = String(f.preset ?? 'tiny');
const corpusMb = Number(f['corpus-mb'] ?? 256);
const mib = (b: number) => (b / 2 ** 20).toFixed(0);

async function lossPerByte(): Promise<void> {
  await useNodeBackend('wasm');
  const cacheDir = mkdtempSync(join(tmpdir(), 'bench-tok-'));
  const rows: (string | number)[][] = [];
  for (const tokenizer of ['byte', bpe]) {
    // The tokenizer is trained and the cache built before the clock starts (maxSeconds counts steps only).
    await prepareDataset({ tokenizer, seqLen: 64, cacheDir }).then((d) => d.close());
    const r = await trainLocal({
      ...DEFAULT_SETTINGS,
      preset,
      tokenizer,
      cacheDir,
      steps: 1_000_000,
      maxSeconds: seconds,
      evalEvery: 1_000_000,
      evalBatches: 8,
      swap: false,
    });
    const bits = (nats: number) => nats / Math.LN2 / r.bytesPerToken;
    rows.push([
      tokenizer,
      r.vocabSize,
      fmt(r.bytesPerToken, 2),
      r.trainLosses.length,
      fmt(r.initialValLoss, 3),
      fmt(r.finalValLoss, 3),
      fmt(bits(r.initialValLoss), 3),
      fmt(bits(r.finalValLoss), 3),
    ]);
    console.log(`  ${tokenizer}: ${r.trainLosses.length} steps in ${seconds} s`);
  }
  rmSync(cacheDir, { recursive: true, force: true });
  console.log(`\nvalidation loss after ${seconds} s of training each (preset ${preset}, seq = the preset's in tokens, shipped corpus):`);
  console.log(table(['tokenizer', 'vocab', 'bytes/token', 'steps', 'val nats/token 0', 'val nats/token end', 'bits/byte 0', 'bits/byte end'], rows));
}

async function memory(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-corpus-'));
  const path = join(dir, 'big.txt.gz');
  const lines = readFileSync(DEFAULT_CORPUS, 'utf8').split('\n');
  const rand = mulberry32(7);
  const out = createGzip({ level: 1 });
  const file = createWriteStream(path);
  out.pipe(file);
  let written = 0;
  const target = corpusMb * 2 ** 20;
  while (written < target) {
    const block: string[] = [];
    for (let i = 0; i < 5000; i++) block.push(lines[Math.floor(rand() * lines.length)]!);
    const text = block.join('\n') + '\n';
    written += Buffer.byteLength(text);
    if (!out.write(text)) await once(out, 'drain');
  }
  out.end();
  await once(file, 'close');
  global.gc?.();
  const before = process.memoryUsage().rss;
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  const t0 = Date.now();
  const d = await prepareDataset({ path, tokenizer: 'byte', seqLen: 256, cacheDir: join(dir, 'cache') });
  const buildS = (Date.now() - t0) / 1000;
  let peakBatches = process.memoryUsage().rss;
  for (let it = 0; it < 200; it++) {
    d.dataset.trainBatch(1234, it, 0, 8);
    peakBatches = Math.max(peakBatches, process.memoryUsage().rss);
  }
  clearInterval(timer);
  d.close();
  console.log(`\ngenerated corpus: ${mib(written)} MiB of text (${mib(statSync(path).size)} MiB gzip), ${d.meta.tokens} byte tokens`);
  console.log(
    table(
      ['phase', 'RSS MiB'],
      [
        ['before', mib(before)],
        [`peak while hashing + tokenising (${fmt(buildS, 1)} s)`, mib(peak)],
        ['peak while drawing 200 batches of 8 x 256', mib(peakBatches)],
      ],
    ),
  );
  rmSync(dir, { recursive: true, force: true });
}

console.log(`bench:tokenizer  ${machine()}`);
if (!f['skip-loss']) await lossPerByte();
if (!f['skip-memory']) await memory();
