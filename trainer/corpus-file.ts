/**
 * Node-only: reads a UTF-8 text file into tokens. (The browser never reads files: the
 * coordinator sends token windows.)
 */
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DataError, TokenDataset } from '../shared/data/dataset.js';
import { getTokenizer, type Tokenizer } from '../shared/data/tokenizer.js';

/** The corpus that ships with the project (public domain; see data/corpus/LICENSE.md). */
export const DEFAULT_CORPUS = fileURLToPath(new URL('../data/corpus/moby-dick.txt', import.meta.url));

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
