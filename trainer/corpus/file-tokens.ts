/**
 * Node-only: a token cache file read by position. Node has no mmap without a native addon, so
 * each window is one `readSync` at its offset (the OS page cache does what mmap would): the
 * process holds a file descriptor, not the tokens, whatever the corpus's size.
 */
import { closeSync, openSync, readSync, fstatSync } from 'node:fs';
import { DataError, type TokenStore } from '../../shared/data/dataset.js';

export class FileTokens implements TokenStore {
  private fd: number | null;
  readonly length: number;

  /** `bytesPerToken`: 2 (uint16, vocabularies up to 65,536) or 4 (uint32); little-endian. */
  constructor(readonly path: string, readonly bytesPerToken: 2 | 4) {
    this.fd = openSync(path, 'r');
    const size = fstatSync(this.fd).size;
    if (size % bytesPerToken !== 0) throw new DataError(`token cache ${path}: ${size} bytes is not a whole number of ${bytesPerToken}-byte tokens`);
    this.length = size / bytesPerToken;
  }

  read(start: number, count: number): Int32Array {
    if (this.fd === null) throw new DataError(`token cache ${this.path} is closed`);
    if (!(start >= 0 && count >= 0 && start + count <= this.length)) {
      throw new DataError(`token cache ${this.path}: read [${start}, ${start + count}) outside [0, ${this.length})`);
    }
    const buf = Buffer.alloc(count * this.bytesPerToken);
    const got = readSync(this.fd, buf, 0, buf.length, start * this.bytesPerToken);
    if (got !== buf.length) throw new DataError(`token cache ${this.path}: short read`);
    const out = new Int32Array(count);
    if (this.bytesPerToken === 2) for (let i = 0; i < count; i++) out[i] = buf.readUInt16LE(2 * i);
    else for (let i = 0; i < count; i++) out[i] = buf.readUInt32LE(4 * i);
    return out;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
