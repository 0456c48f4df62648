/**
 * Node-only: a corpus tokenised once into `<cacheDir>/<key>.tokens` (little-endian uint16, or
 * uint32 past 65,536 tokens) with `<key>.json` beside it recording the corpus hash, the tokenizer
 * hash, the field and the token count. The key is a hash of those, so a changed corpus or
 * tokenizer builds a new cache and never reads a stale one. Both files are written under temporary
 * names and renamed into place (the .json last): a build that fails or is killed leaves nothing
 * that looks complete, and its temporary files are removed on error.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { DataError } from '../../shared/data/dataset.js';
import type { Tokenizer } from '../../shared/data/tokenizer.js';
import { readDocuments, type CorpusFile, type CorpusSpec } from './sources.js';
import { FileTokens } from './file-tokens.js';

export const TOKEN_CACHE_VERSION = 1;

export interface TokenCacheMeta {
  version: number;
  corpusHash: string;
  tokenizerHash: string;
  tokenizer: string;
  field: string | null;
  tokens: number;
  bytesPerToken: 2 | 4;
  /** UTF-8 bytes of text tokenised (for loss per byte). */
  textBytes: number;
  files: number;
}

/** SHA-256 of what a tokenizer does (its kind and tokenizer.json, not its name): what the cache and a resumed run compare. */
export function tokenizerHash(t: Tokenizer): string {
  const s = t.spec;
  return createHash('sha256').update(s.kind === 'hf' ? `hf:${s.json}` : s.kind).digest('hex');
}

export function cacheKey(corpusHash: string, tokHash: string, field: string | undefined): string {
  return createHash('sha256').update(`v${TOKEN_CACHE_VERSION}:${corpusHash}:${tokHash}:${field ?? ''}`).digest('hex').slice(0, 32);
}

/** Opens the cache for this key if it is complete, else null. */
export function openTokenCache(cacheDir: string, key: string): { tokens: FileTokens; meta: TokenCacheMeta } | null {
  const metaPath = join(cacheDir, `${key}.json`);
  const tokPath = join(cacheDir, `${key}.tokens`);
  if (!existsSync(metaPath) || !existsSync(tokPath)) return null;
  const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as TokenCacheMeta;
  if (meta.version !== TOKEN_CACHE_VERSION || statSync(tokPath).size !== meta.tokens * meta.bytesPerToken) return null;
  return { tokens: new FileTokens(tokPath, meta.bytesPerToken), meta };
}

/** Tokenises the corpus into the cache (streaming: memory is one text block and a write buffer). */
export async function buildTokenCache(o: {
  cacheDir: string;
  key: string;
  spec: CorpusSpec;
  files: CorpusFile[];
  corpusHash: string;
  tokenizer: Tokenizer;
  onProgress?: (bytes: number, tokens: number) => void;
}): Promise<{ tokens: FileTokens; meta: TokenCacheMeta }> {
  mkdirSync(o.cacheDir, { recursive: true });
  const bytesPerToken: 2 | 4 = o.tokenizer.vocabSize <= 65536 ? 2 : 4;
  const tmp = `.${o.key}.${process.pid}.${Date.now()}.tmp`;
  const tokTmp = join(o.cacheDir, `${tmp}.tokens`);
  const metaTmp = join(o.cacheDir, `${tmp}.json`);
  const fd = openSync(tokTmp, 'w');
  const sep = o.tokenizer.encode('\n\n');
  const buf = Buffer.alloc(1 << 22);
  let used = 0;
  let tokens = 0;
  let textBytes = 0;
  const flush = () => {
    if (used > 0) writeSync(fd, buf, 0, used);
    used = 0;
  };
  const put = (ids: Int32Array) => {
    for (let i = 0; i < ids.length; i++) {
      if (used + bytesPerToken > buf.length) flush();
      const id = ids[i]!;
      if (bytesPerToken === 2) buf.writeUInt16LE(id, used);
      else buf.writeUInt32LE(id, used);
      used += bytesPerToken;
    }
    tokens += ids.length;
  };
  try {
    for await (const doc of readDocuments(o.spec, o.files)) {
      put(o.tokenizer.encode(doc.text));
      textBytes += Buffer.byteLength(doc.text);
      // JSON records are separate documents; text files run on as they are.
      if (doc.ends && o.spec.field !== undefined) put(sep);
      o.onProgress?.(textBytes, tokens);
    }
    flush();
    closeSync(fd);
    const meta: TokenCacheMeta = {
      version: TOKEN_CACHE_VERSION,
      corpusHash: o.corpusHash,
      tokenizerHash: tokenizerHash(o.tokenizer),
      tokenizer: o.tokenizer.name,
      field: o.spec.field ?? null,
      tokens,
      bytesPerToken,
      textBytes,
      files: o.files.length,
    };
    writeFileSync(metaTmp, JSON.stringify(meta, null, 2));
    renameSync(tokTmp, join(o.cacheDir, `${o.key}.tokens`));
    renameSync(metaTmp, join(o.cacheDir, `${o.key}.json`));
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    rmSync(tokTmp, { force: true });
    rmSync(metaTmp, { force: true });
    throw e;
  }
  const opened = openTokenCache(o.cacheDir, o.key);
  if (!opened) throw new DataError(`token cache ${o.key} in ${o.cacheDir} did not open after building`);
  return opened;
}
