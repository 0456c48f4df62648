/**
 * Node-only: the documents of a corpus, streamed so a corpus bigger than memory can be read.
 * `--data` is a text file, a folder of them (every regular file below it, sorted by path, dot
 * files skipped), or with `--data-field` JSON Lines whose records hold the text in that field;
 * any file may be gzip-compressed (recognised by its magic bytes, not its name).
 *
 * Every problem is a DataError naming the file and, where there is one, the line: not UTF-8, an
 * empty file or corpus, a line that is not JSON, a record without the field, a corrupt gzip.
 */
import { createReadStream, openSync, readSync, closeSync, readdirSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, relative } from 'node:path';
import { createGunzip } from 'node:zlib';
import { DataError } from '../../shared/data/dataset.js';

export interface CorpusSpec {
  /** A file or a folder. */
  path: string;
  /** JSON Lines: the record field that holds the text. Absent: plain text. */
  field?: string;
}

export interface CorpusFile {
  path: string;
  size: number;
  gzip: boolean;
}

/** One piece of text and where it starts. */
export interface Document {
  text: string;
  file: string;
  line: number;
  /** True for the last piece of a JSON record or a file (a document boundary follows). */
  ends: boolean;
}

/** Text blocks handed to the tokenizer are about this long (whole lines). */
const BLOCK_BYTES = 1 << 20;

function isGzip(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const magic = Buffer.alloc(2);
    return readSync(fd, magic, 0, 2, 0) === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
  } finally {
    closeSync(fd);
  }
}

/** The corpus's files in a fixed order; throws a DataError when there are none or one is empty. */
export function listCorpusFiles(path: string): CorpusFile[] {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new DataError(`cannot read corpus "${path}": no such file or folder`);
  }
  const paths: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      if (e.name.startsWith('.')) continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) paths.push(p);
    }
  };
  if (st.isDirectory()) walk(path);
  else paths.push(path);
  if (paths.length === 0) throw new DataError(`corpus folder "${path}" holds no files`);
  return paths.map((p) => {
    const size = statSync(p).size;
    if (size === 0) throw new DataError(`text file "${p}" is empty`);
    return { path: p, size, gzip: isGzip(p) };
  });
}

/** SHA-256 over the files' relative names and raw bytes, and the field: the corpus's identity. */
export async function hashCorpus(spec: CorpusSpec, files: CorpusFile[]): Promise<string> {
  const h = createHash('sha256');
  h.update(`field:${spec.field ?? ''}\n`);
  const root = statSync(spec.path).isDirectory() ? spec.path : join(spec.path, '..');
  for (const f of files) {
    h.update(`file:${relative(root, f.path)}:${f.size}\n`);
    for await (const chunk of createReadStream(f.path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  }
  return h.digest('hex');
}

/** The file's bytes as chunks, gunzipped if needed, with gzip damage reported as a DataError. */
async function* fileBytes(f: CorpusFile, lineNow: () => number): AsyncGenerator<Buffer> {
  const raw = createReadStream(f.path, { highWaterMark: 1 << 20 });
  const stream = f.gzip ? raw.pipe(createGunzip()) : raw;
  if (f.gzip) raw.on('error', (e) => stream.destroy(e));
  try {
    for await (const chunk of stream) yield chunk as Buffer;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (f.gzip && code.startsWith('Z_')) throw new DataError(`${f.path}: corrupt gzip after line ${lineNow()} (${(e as Error).message})`);
    throw new DataError(`${f.path}: cannot read (${(e as Error).message})`);
  } finally {
    raw.destroy();
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes whole lines starting at line `first`, naming the first line that is not UTF-8. */
function decodeLines(bytes: Buffer, file: string, first: number): string {
  try {
    return utf8.decode(bytes);
  } catch {
    let line = first;
    let start = 0;
    for (;;) {
      const nl = bytes.indexOf(10, start);
      const end = nl < 0 ? bytes.length : nl;
      try {
        utf8.decode(bytes.subarray(start, end));
      } catch {
        throw new DataError(`${file}:${line}: not valid UTF-8`);
      }
      if (nl < 0) throw new DataError(`${file}: not valid UTF-8 near line ${first}`);
      start = nl + 1;
      line++;
    }
  }
}

function countLines(b: Buffer): number {
  let n = 0;
  for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) n++;
  return n;
}

/** One file's whole lines, in blocks of about BLOCK_BYTES, with the line number each starts at. */
async function* lineBlocks(f: CorpusFile): AsyncGenerator<{ bytes: Buffer; line: number; last: boolean }> {
  let line = 1;
  let rest: Buffer = Buffer.alloc(0);
  for await (const chunk of fileBytes(f, () => line)) {
    rest = rest.length ? Buffer.concat([rest, chunk]) : chunk;
    if (rest.length < BLOCK_BYTES) continue;
    const cut = rest.lastIndexOf(10);
    if (cut < 0) continue;
    const block = rest.subarray(0, cut + 1);
    rest = Buffer.from(rest.subarray(cut + 1));
    yield { bytes: block, line, last: false };
    line += countLines(block);
  }
  yield { bytes: rest, line, last: true };
}

/** Every document of the corpus, in order (text files in blocks of whole lines). */
export async function* readDocuments(spec: CorpusSpec, files: CorpusFile[]): AsyncGenerator<Document> {
  let any = false;
  for (const f of files) {
    let fileHasText = false;
    for await (const block of lineBlocks(f)) {
      const text = decodeLines(block.bytes, f.path, block.line);
      if (spec.field === undefined) {
        // A text file is one document, handed on in blocks; the last block (maybe empty) ends it.
        fileHasText ||= text.length > 0;
        if (text.length > 0 || (block.last && fileHasText)) yield { text, file: f.path, line: block.line, ends: block.last };
        continue;
      }
      const lines = text.split('\n');
      for (let i = 0; i < lines.length; i++) {
        const raw = lines[i]!.trim();
        if (raw === '') continue;
        const at = `${f.path}:${block.line + i}`;
        let rec: unknown;
        try {
          rec = JSON.parse(raw);
        } catch (e) {
          throw new DataError(`${at}: not a JSON line (${(e as Error).message})`);
        }
        const v = rec !== null && typeof rec === 'object' && !Array.isArray(rec) ? (rec as Record<string, unknown>)[spec.field] : undefined;
        if (typeof v !== 'string') throw new DataError(`${at}: the record has no string field "${spec.field}"`);
        if (v.length === 0) continue;
        fileHasText = true;
        yield { text: v, file: f.path, line: block.line + i, ends: true };
      }
    }
    if (!fileHasText) throw new DataError(`${f.path}: no text${spec.field !== undefined ? ` (no record with a non-empty "${spec.field}")` : ''}`);
    any = true;
  }
  if (!any) throw new DataError(`corpus "${spec.path}" holds no text`);
}
