/**
 * Node-only: `--tokenizer` to a Tokenizer.
 *   byte                the byte-level tokenizer;
 *   bpe | bpe:N         a byte-level BPE of N tokens (default 4096) trained on the corpus (on its
 *                       first `trainChars` characters), cached as
 *                       `<cacheDir>/bpe-<N>-<corpus hash>.tokenizer.json` and reused;
 *   <file>.json         a Hugging Face tokenizer.json, loaded as is.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ByteTokenizer, TokenizerError, TOKENIZER_FORMS, type Tokenizer } from '../../shared/data/tokenizer.js';
import { HfTokenizer } from '../../shared/data/hf-tokenizer.js';
import { ChunkCounts, trainBpe, bpeTokenizerJson } from '../../shared/data/bpe-trainer.js';
import { readDocuments, type CorpusFile, type CorpusSpec } from './sources.js';

export const DEFAULT_BPE_VOCAB = 4096;
/** Characters of the corpus the BPE trainer reads (its chunk counts stay in memory). */
export const DEFAULT_BPE_TRAIN_CHARS = 64 * 1024 * 1024;

/** Parses `bpe` / `bpe:N`; null for other names. */
export function bpeVocabOf(name: string): number | null {
  const m = /^bpe(?::(\d+))?$/.exec(name);
  if (!m) return null;
  const n = m[1] === undefined ? DEFAULT_BPE_VOCAB : Number(m[1]);
  if (!(n >= 257 && n <= 1 << 20)) throw new TokenizerError(`--tokenizer ${name}: the BPE vocabulary must be in [257, ${1 << 20}]`);
  return n;
}

export async function resolveTokenizer(
  name: string,
  corpus: { spec: CorpusSpec; files: CorpusFile[]; hash: string; cacheDir: string; trainChars?: number; log?: (line: string) => void },
): Promise<Tokenizer> {
  if (name === 'byte') return new ByteTokenizer();
  const vocab = bpeVocabOf(name);
  if (vocab !== null) {
    const limit = corpus.trainChars ?? DEFAULT_BPE_TRAIN_CHARS;
    const capped = limit === DEFAULT_BPE_TRAIN_CHARS ? '' : `-c${limit}`;
    const path = join(corpus.cacheDir, `bpe-${vocab}-${corpus.hash.slice(0, 16)}${capped}.tokenizer.json`);
    if (existsSync(path)) return HfTokenizer.fromJson(readFileSync(path, 'utf8'), `bpe:${vocab}`);
    const counts = new ChunkCounts();
    const t0 = Date.now();
    for await (const doc of readDocuments(corpus.spec, corpus.files)) {
      counts.add(doc.text.slice(0, limit - counts.chars));
      if (counts.chars >= limit) break;
    }
    const json = JSON.stringify(bpeTokenizerJson(trainBpe(counts, vocab)));
    mkdirSync(corpus.cacheDir, { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, json);
    renameSync(tmp, path);
    corpus.log?.(`trained bpe:${vocab} on ${counts.chars} characters (${counts.counts.size} distinct chunks) in ${((Date.now() - t0) / 1000).toFixed(1)} s -> ${path}`);
    return HfTokenizer.fromJson(json, `bpe:${vocab}`);
  }
  if (!existsSync(name)) throw new TokenizerError(`--tokenizer "${name}": no such file; --tokenizer takes ${TOKENIZER_FORMS}`);
  return HfTokenizer.fromJson(readFileSync(name, 'utf8'), name);
}
