/**
 * The safetensors file format (https://huggingface.co/docs/safetensors), float32 only, written
 * and read without dependencies:
 *
 *   bytes 0..8      N, the header length, unsigned 64-bit little-endian
 *   bytes 8..8+N    JSON header, UTF-8, padded with spaces so the data starts 8-byte aligned:
 *                   { "__metadata__": { string: string }, name: { "dtype": "F32", "shape": [..],
 *                     "data_offsets": [begin, end] }, ... }
 *   bytes 8+N..     the data buffer; offsets are relative to its start, tensors row-major,
 *                   little-endian, back to back with no holes (as the format requires)
 *
 * docs/model-export.md describes how the swarm's exported model uses it.
 */

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

export interface F32Tensor {
  shape: number[];
  data: Float32Array;
}

export interface SafetensorsFile {
  tensors: Map<string, F32Tensor>;
  metadata: Record<string, string>;
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

const MAX_HEADER_BYTES = 100 * 1024 * 1024;

function elements(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Encodes tensors (in the given order) and string metadata into one safetensors file. */
export function encodeSafetensors(tensors: Iterable<[string, F32Tensor]>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const list: [string, F32Tensor][] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === '__metadata__' || name in header) throw new SafetensorsError(`duplicate or reserved tensor name "${name}"`);
    if (!t.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new SafetensorsError(`tensor "${name}" has a bad shape [${t.shape}]`);
    if (elements(t.shape) !== t.data.length) {
      throw new SafetensorsError(`tensor "${name}": shape [${t.shape}] needs ${elements(t.shape)} values, has ${t.data.length}`);
    }
    const bytes = t.data.length * 4;
    header[name] = { dtype: 'F32', shape: [...t.shape], data_offsets: [offset, offset + bytes] } satisfies HeaderEntry;
    offset += bytes;
    list.push([name, t]);
  }
  let json = JSON.stringify(header);
  const raw = new TextEncoder().encode(json);
  const pad = (8 - (raw.length % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const [, t] of list) {
    const dv = new DataView(out.buffer, at, t.data.length * 4);
    for (let i = 0; i < t.data.length; i++) dv.setFloat32(i * 4, t.data[i]!, true);
    at += t.data.length * 4;
  }
  return out;
}

/** Parses and validates a safetensors file holding float32 tensors. Data are fresh copies. */
export function decodeSafetensors(buf: Uint8Array | ArrayBuffer): SafetensorsFile {
  const bytes = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  if (bytes.length < 8) throw new SafetensorsError(`${bytes.length} bytes is too short for a safetensors file`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(Math.min(bytes.length - 8, MAX_HEADER_BYTES))) throw new SafetensorsError(`header length ${n} exceeds the file`);
  const headerLen = Number(n);
  let header: Record<string, unknown>;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLen));
    if (!text.startsWith('{')) throw new Error('header must start with "{"');
    header = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new SafetensorsError(`bad header: ${(e as Error).message}`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) throw new SafetensorsError('header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: [string, HeaderEntry][] = [];
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new SafetensorsError('__metadata__ must be an object');
      for (const [k, s] of Object.entries(v)) {
        if (typeof s !== 'string') throw new SafetensorsError(`metadata "${k}" must be a string`);
        metadata[k] = s;
      }
      continue;
    }
    const e = v as HeaderEntry;
    if (!e || typeof e !== 'object' || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets) || e.data_offsets.length !== 2) {
      throw new SafetensorsError(`tensor "${name}": malformed entry`);
    }
    if (e.dtype !== 'F32') throw new SafetensorsError(`tensor "${name}": dtype ${e.dtype} is not supported (F32 only)`);
    if (!e.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new SafetensorsError(`tensor "${name}": bad shape`);
    const [b, end] = e.data_offsets;
    if (!Number.isInteger(b) || !Number.isInteger(end) || b < 0 || end < b || end > dataLen) {
      throw new SafetensorsError(`tensor "${name}": offsets [${b}, ${end}] outside the ${dataLen}-byte buffer`);
    }
    if (end - b !== elements(e.shape) * 4) throw new SafetensorsError(`tensor "${name}": shape [${e.shape}] needs ${elements(e.shape) * 4} bytes, offsets span ${end - b}`);
    entries.push([name, e]);
  }
  // The buffer must be covered exactly: no holes, no overlaps.
  const sorted = [...entries].sort((x, y) => x[1].data_offsets[0] - y[1].data_offsets[0]);
  let expected = 0;
  for (const [name, e] of sorted) {
    if (e.data_offsets[0] !== expected) throw new SafetensorsError(`tensor "${name}" starts at ${e.data_offsets[0]}, expected ${expected} (hole or overlap)`);
    expected = e.data_offsets[1];
  }
  if (expected !== dataLen) throw new SafetensorsError(`data buffer has ${dataLen} bytes, tensors cover ${expected}`);
  const tensors = new Map<string, F32Tensor>();
  for (const [name, e] of entries) {
    const count = elements(e.shape);
    const data = new Float32Array(count);
    const dv = new DataView(bytes.buffer, bytes.byteOffset + dataStart + e.data_offsets[0], count * 4);
    for (let i = 0; i < count; i++) data[i] = dv.getFloat32(i * 4, true);
    tensors.set(name, { shape: e.shape, data });
  }
  return { tensors, metadata };
}
