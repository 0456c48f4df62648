/**
 * Byte-level helpers shared by the codecs: normalising binary inputs (Node
 * Buffers, Uint8Array views at any byteOffset, ArrayBuffers) and copying
 * 32-bit words in and out as little-endian regardless of the platform.
 */
import { FrameError } from './frame-error';

/** True on little-endian platforms (all mainstream ones); enables bulk copies. */
export const IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Round `n` up to a multiple of 4. */
export function align4(n: number): number {
  return (n + 3) & ~3;
}

function isArrayBuffer(value: unknown): value is ArrayBuffer {
  // instanceof fails across realms (iframes, workers, vm contexts).
  return value instanceof ArrayBuffer || Object.prototype.toString.call(value) === '[object ArrayBuffer]';
}

/**
 * View `input` as bytes without copying. Accepts an ArrayBuffer or any
 * ArrayBufferView (Uint8Array, Node Buffer, DataView, ...). Anything else,
 * e.g. a string or object sent by a misbehaving peer, is a `FrameError('magic')`.
 */
export function asBytes(input: unknown): Uint8Array {
  if (input instanceof Uint8Array) return input;
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  if (isArrayBuffer(input)) return new Uint8Array(input);
  throw new FrameError('magic', `expected binary data, got ${input === null ? 'null' : typeof input}`);
}

/** A 32-bit typed array constructor the codecs can produce. */
export type WordArrayConstructor = Float32ArrayConstructor | Int32ArrayConstructor;

/**
 * Copy `count` little-endian 32-bit words starting at `offset` of `bytes`
 * into a fresh, aligned typed array. The result never aliases `bytes`.
 */
export function readWords<C extends WordArrayConstructor>(
  Ctor: C,
  bytes: Uint8Array,
  offset: number,
  count: number,
): InstanceType<C> {
  if (!IS_LITTLE_ENDIAN) return readWordsPortable(Ctor, bytes, offset, count);
  const out = new Ctor(count) as InstanceType<C>;
  new Uint8Array(out.buffer).set(bytes.subarray(offset, offset + count * 4));
  return out;
}

/** `readWords` via DataView, correct on any host; used on big-endian hosts. */
export function readWordsPortable<C extends WordArrayConstructor>(
  Ctor: C,
  bytes: Uint8Array,
  offset: number,
  count: number,
): InstanceType<C> {
  const out = new Ctor(count) as InstanceType<C>;
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, count * 4);
  if (out instanceof Float32Array) {
    for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
  } else {
    for (let i = 0; i < count; i++) out[i] = view.getInt32(i * 4, true);
  }
  return out;
}

/** Write `data` as little-endian 32-bit words into `dest` at `offset`. */
export function writeWords(dest: Uint8Array, offset: number, data: Float32Array | Int32Array): void {
  if (!IS_LITTLE_ENDIAN) return writeWordsPortable(dest, offset, data);
  dest.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
}

/** `writeWords` via DataView, correct on any host; used on big-endian hosts. */
export function writeWordsPortable(dest: Uint8Array, offset: number, data: Float32Array | Int32Array): void {
  const view = new DataView(dest.buffer, dest.byteOffset + offset, data.byteLength);
  if (data instanceof Float32Array) {
    for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i], true);
  } else {
    for (let i = 0; i < data.length; i++) view.setInt32(i * 4, data[i], true);
  }
}

/** Default cap on the total size of a frame or bundle, in bytes (64 MiB). */
export const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

/**
 * The byte limit to enforce: `maxBytes`, or DEFAULT_MAX_BYTES when omitted.
 * An invalid limit is a programming error, so it throws RangeError.
 */
export function resolveMaxBytes(maxBytes: number | undefined): number {
  if (maxBytes === undefined) return DEFAULT_MAX_BYTES;
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) {
    throw new RangeError(`maxBytes must be a positive integer, got ${maxBytes}`);
  }
  return maxBytes;
}
