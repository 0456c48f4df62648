/**
 * Node-only: a corpus to a dataset. (The browser never reads files: the coordinator sends token
 * windows.)
 *
 * `prepareDataset` is the entry point for real corpora: any size, text / folder / JSON Lines,
 * gzip, any tokenizer; tokenised once into a cache on disk and read by position.
 * `loadDataset` is the small, synchronous path kept for tests and experiments: one UTF-8 file,
 * byte tokenizer, tokens in memory.
 */
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DataError, TokenDataset } from '../shared/data/dataset.js';
import { getTokenizer, type Tokenizer } from '../shared/data/tokenizer.js';
import { hashCorpus, listCorpusFiles } from './corpus/sources.js';
import { resolveTokenizer } from './corpus/resolve-tokenizer.js';
import { buildTokenCache, cacheKey, openTokenCache, tokenizerHash, type TokenCacheMeta } from './corpus/token-cache.js';

/** The corpus that ships with the project (public domain; see data/corpus/LICENSE.md). */
export const DEFAULT_CORPUS = fileURLToPath(new URL('../data/corpus/moby-dick.txt', import.meta.url));
/** Where tokenizers and token caches go when no data directory is given. */
export const DEFAULT_CACHE_DIR = fileURLToPath(new URL('../.data/corpus-cache', import.meta.url));

export function readTextFile(path: string): string {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    throw new DataError(`cannot read text file "${path}": no such file`);
  }
  if (size === 0) throw new DataError(`text file "${path}" is empty`);
  const bytes = readFileSync(path);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new DataError(`text file "${path}" is not valid UTF-8`);
  }
}

export function loadDataset(opts: { path?: string; tokenizer?: string; seqLen: number; valFraction?: number }): {
  dataset: TokenDataset;
  tokenizer: Tokenizer;
  path: string;
} {
  const tokenizer = getTokenizer(opts.tokenizer ?? 'byte');
  const path = opts.path ?? DEFAULT_CORPUS;
  const dataset = new TokenDataset(tokenizer.encode(readTextFile(path)), opts.seqLen, opts.valFraction);
  return { dataset, tokenizer, path };
}

export interface PreparedDataset {
  dataset: TokenDataset;
  tokenizer: Tokenizer;
  /** What a resumed run must match: the corpus's and the tokenizer's SHA-256. */
  corpusHash: string;
  tokenizerHash: string;
  meta: TokenCacheMeta;
  /** True when the token cache was built now (false: reused). */
  built: boolean;
  /** Closes the token cache file. */
  close(): void;
}

export interface PrepareOptions {
  /** A text file, a folder, or JSON Lines (with `field`); default: the shipped corpus. */
  path?: string;
  field?: string;
  /** byte | bpe[:N] | path to a tokenizer.json (default byte). */
  tokenizer?: string;
  seqLen: number;
  valFraction?: number;
  /** Where tokenizers and token caches live (default .data/corpus-cache). */
  cacheDir?: string;
  /** Characters the BPE trainer reads (default 64 Mi). */
  bpeTrainChars?: number;
  log?: (line: string) => void;
}

/** Hashes the corpus, resolves the tokenizer, opens or builds the token cache. */
export async function prepareDataset(o: PrepareOptions): Promise<PreparedDataset> {
  const spec = { path: o.path ?? DEFAULT_CORPUS, field: o.field };
  const cacheDir = o.cacheDir ?? DEFAULT_CACHE_DIR;
  const files = listCorpusFiles(spec.path);
  const corpusHash = await hashCorpus(spec, files);
  const tokenizer = await resolveTokenizer(o.tokenizer ?? 'byte', { spec, files, hash: corpusHash, cacheDir, trainChars: o.bpeTrainChars, log: o.log });
  const tokHash = tokenizerHash(tokenizer);
  const key = cacheKey(corpusHash, tokHash, spec.field);
  let cache = openTokenCache(cacheDir, key);
  const built = cache === null;
  if (!cache) {
    const t0 = Date.now();
    cache = await buildTokenCache({ cacheDir, key, spec, files, corpusHash, tokenizer });
    o.log?.(
      `tokenised ${files.length} file(s), ${cache.meta.textBytes} bytes of text -> ${cache.meta.tokens} ${tokenizer.name} tokens ` +
        `in ${((Date.now() - t0) / 1000).toFixed(1)} s (cache ${key})`,
    );
  }
  const tokens = cache.tokens;
  let dataset: TokenDataset;
  try {
    dataset = new TokenDataset(tokens, o.seqLen, o.valFraction);
  } catch (e) {
    tokens.close();
    throw e;
  }
  return { dataset, tokenizer, corpusHash, tokenizerHash: tokHash, meta: cache.meta, built, close: () => tokens.close() };
}
