/**
 * Binary tensor frames: how activations, gradients, tokens, targets and
 * weights travel between coordinator and browser tabs.
 *
 * Layout (all multi-byte fields little-endian):
 *
 *   offset  size  field
 *   0       4     magic 'SWRM' (ASCII)
 *   4       1     version (FRAME_VERSION)
 *   5       1     kind code (KIND_CODES)
 *   6       1     dtype code (DTYPE_CODES)
 *   7       1     rank R, 1..4
 *   8       4     iteration, uint32
 *   12      2     microbatch, uint16
 *   14      2     hop, uint16
 *   16      2     fromStage, int16 (-1 = coordinator)
 *   18      2     toStage, int16 (-1 = coordinator)
 *   20      4*R   shape, uint32 each, every dim 1..2^24
 *   20+4R   ...   payload: product(shape) 32-bit words, offset 4-aligned
 *
 * The frame ends exactly where the payload does. Works in Node and browsers:
 * only DataView / typed arrays, no Buffer. Decoded data is copied into fresh
 * aligned storage, so it never aliases the input buffer, unless the caller
 * asks for a view with `copy: false` (validate-and-forward).
 */
import { DEFAULT_MAX_BYTES, IS_LITTLE_ENDIAN, asBytes, align4, readWords, resolveMaxBytes, writeWords } from './bytes';
import { assertFinite } from './finite';
import { FrameError } from './frame-error';
import { MAX_RANK, shapeSize } from './shape';

export { encodeNamedTensors, decodeNamedTensors } from './named-tensors';

/** ASCII magic at the start of every tensor frame. */
export const FRAME_MAGIC = 'SWRM';
/** Current tensor frame format version. */
export const FRAME_VERSION = 1;
/** Default cap on a frame's total size, in bytes (64 MiB). */
export const DEFAULT_MAX_FRAME_BYTES = DEFAULT_MAX_BYTES;

export const FRAME_KINDS = ['act', 'grad', 'tokens', 'targets', 'weights'] as const;
export type FrameKind = (typeof FRAME_KINDS)[number];

export const FRAME_DTYPES = ['float32', 'int32'] as const;
export type FrameDtype = (typeof FRAME_DTYPES)[number];

/** Wire codes; 0 is never valid. Never renumber, only add. */
const KIND_CODES: Record<FrameKind, number> = { act: 1, grad: 2, tokens: 3, targets: 4, weights: 5 };
const DTYPE_CODES: Record<FrameDtype, number> = { float32: 1, int32: 2 };

/** Bytes before the shape: magic, version, kind, dtype, rank, iteration, mb, hop, from, to. */
const FIXED_HEADER_BYTES = 20;
const BYTES_PER_ELEMENT = 4;
const MAGIC_BYTES = Uint8Array.from(FRAME_MAGIC, (c) => c.charCodeAt(0));

export interface FrameHeader {
  kind: FrameKind;
  /** Training iteration, uint32. */
  iteration: number;
  /** Microbatch index within the iteration, uint16. */
  microbatch: number;
  /** Hop index along the microbatch's path (see shared/schedule), uint16. */
  hop: number;
  /** Sending stage, int16; -1 is the coordinator. */
  fromStage: number;
  /** Receiving stage, int16; -1 is the coordinator. */
  toStage: number;
  dtype: FrameDtype;
  /** Tensor shape, rank 1..4, each dim 1..2^24. */
  shape: number[];
}

export type TensorData = Float32Array | Int32Array;

export interface DecodedFrame {
  header: FrameHeader;
  data: TensorData;
}

export interface FrameLimits {
  /** Reject frames larger than this many bytes. Defaults to 64 MiB. */
  maxBytes?: number;
  /**
   * false: return the payload as a view into `buf` when its alignment allows, instead of a copy
   * (for validate-and-forward, where the bytes are relayed as they are). Default true.
   */
  copy?: boolean;
}

function codeToName<T extends string>(codes: Record<T, number>, code: number): T | undefined {
  return (Object.keys(codes) as T[]).find((name) => codes[name] === code);
}

/** Total encoded size in bytes of a frame carrying a tensor of `shape`. */
export function frameByteLength(shape: readonly number[]): number {
  return FIXED_HEADER_BYTES + align4(4 * shape.length) + shapeSize(shape) * BYTES_PER_ELEMENT;
}

function checkIntField(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new FrameError('header', `${name} must be an integer in ${min}..${max}, got ${value}`);
  }
}

/**
 * Encode one tensor as a frame. Throws `FrameError` for anything the decoder
 * would reject: bad header fields, a data array that does not match dtype or
 * shape, non-finite float32 values, or a frame over `limits.maxBytes`.
 */
export function encodeTensorFrame(header: FrameHeader, data: TensorData, limits: FrameLimits = {}): Uint8Array {
  const maxBytes = resolveMaxBytes(limits.maxBytes);
  if (!Object.hasOwn(KIND_CODES, header.kind)) throw new FrameError('kind', `unknown kind ${String(header.kind)}`);
  if (!Object.hasOwn(DTYPE_CODES, header.dtype)) throw new FrameError('dtype', `unknown dtype ${String(header.dtype)}`);
  const expectedCtor = header.dtype === 'float32' ? Float32Array : Int32Array;
  if (!(data instanceof expectedCtor)) {
    throw new FrameError('dtype', `dtype ${header.dtype} needs a ${expectedCtor.name}, got ${data?.constructor?.name}`);
  }
  checkIntField('iteration', header.iteration, 0, 0xffffffff);
  checkIntField('microbatch', header.microbatch, 0, 0xffff);
  checkIntField('hop', header.hop, 0, 0xffff);
  checkIntField('fromStage', header.fromStage, -1, 0x7fff);
  checkIntField('toStage', header.toStage, -1, 0x7fff);
  const count = shapeSize(header.shape);
  if (count !== data.length) {
    throw new FrameError('shape', `shape [${header.shape.join(', ')}] needs ${count} values, data has ${data.length}`);
  }
  const payloadOffset = FIXED_HEADER_BYTES + align4(4 * header.shape.length);
  const total = payloadOffset + count * BYTES_PER_ELEMENT;
  if (total > maxBytes) throw new FrameError('size', `frame of ${total} bytes exceeds limit ${maxBytes}`);
  if (data instanceof Float32Array) assertFinite(data, `${header.kind} frame`);

  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(MAGIC_BYTES, 0);
  view.setUint8(4, FRAME_VERSION);
  view.setUint8(5, KIND_CODES[header.kind]);
  view.setUint8(6, DTYPE_CODES[header.dtype]);
  view.setUint8(7, header.shape.length);
  view.setUint32(8, header.iteration, true);
  view.setUint16(12, header.microbatch, true);
  view.setUint16(14, header.hop, true);
  view.setInt16(16, header.fromStage, true);
  view.setInt16(18, header.toStage, true);
  header.shape.forEach((dim, i) => view.setUint32(FIXED_HEADER_BYTES + 4 * i, dim, true));
  writeWords(out, payloadOffset, data);
  return out;
}

/** Throw FrameError('magic') unless `bytes` starts with the magic (or a prefix of it when short). */
function checkMagic(bytes: Uint8Array): void {
  const n = Math.min(bytes.length, MAGIC_BYTES.length);
  for (let i = 0; i < n; i++) {
    if (bytes[i] !== MAGIC_BYTES[i]) throw new FrameError('magic', `bad magic byte ${bytes[i]} at offset ${i}`);
  }
}

/**
 * Decode and validate a frame. Accepts a Uint8Array (including Node Buffers
 * and views at any byteOffset) or an ArrayBuffer. Every rejection is a
 * `FrameError`; the returned data is a fresh copy.
 */
export function decodeTensorFrame(buf: Uint8Array | ArrayBuffer, limits: FrameLimits = {}): DecodedFrame {
  const maxBytes = resolveMaxBytes(limits.maxBytes);
  const bytes = asBytes(buf);
  if (bytes.length > maxBytes) throw new FrameError('size', `frame of ${bytes.length} bytes exceeds limit ${maxBytes}`);
  checkMagic(bytes);
  if (bytes.length < FIXED_HEADER_BYTES) {
    throw new FrameError('truncated', `${bytes.length} bytes is shorter than the ${FIXED_HEADER_BYTES}-byte header`);
  }

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint8(4);
  if (version !== FRAME_VERSION) throw new FrameError('version', `unsupported version ${version}`);
  const kind = codeToName(KIND_CODES, view.getUint8(5));
  if (kind === undefined) throw new FrameError('kind', `unknown kind code ${view.getUint8(5)}`);
  const dtype = codeToName(DTYPE_CODES, view.getUint8(6));
  if (dtype === undefined) throw new FrameError('dtype', `unknown dtype code ${view.getUint8(6)}`);
  const rank = view.getUint8(7);
  if (rank < 1 || rank > MAX_RANK) throw new FrameError('shape', `rank must be 1..${MAX_RANK}, got ${rank}`);

  const payloadOffset = FIXED_HEADER_BYTES + align4(4 * rank);
  if (bytes.length < payloadOffset) {
    throw new FrameError('truncated', `${bytes.length} bytes is shorter than the ${payloadOffset}-byte header`);
  }
  const shape = Array.from({ length: rank }, (_, i) => view.getUint32(FIXED_HEADER_BYTES + 4 * i, true));
  const count = shapeSize(shape);

  const fromStage = view.getInt16(16, true);
  const toStage = view.getInt16(18, true);
  if (fromStage < -1 || toStage < -1) {
    throw new FrameError('header', `stage ids must be >= -1, got from ${fromStage} to ${toStage}`);
  }

  const expectedPayload = count * BYTES_PER_ELEMENT;
  const actualPayload = bytes.length - payloadOffset;
  if (actualPayload < expectedPayload) {
    throw new FrameError('truncated', `payload has ${actualPayload} bytes, shape [${shape.join(', ')}] needs ${expectedPayload}`);
  }
  if (actualPayload > expectedPayload) {
    throw new FrameError('size', `payload has ${actualPayload} bytes, shape [${shape.join(', ')}] needs only ${expectedPayload}`);
  }

  const Ctor = dtype === 'float32' ? Float32Array : Int32Array;
  const start = bytes.byteOffset + payloadOffset;
  const data =
    limits.copy === false && IS_LITTLE_ENDIAN && start % 4 === 0
      ? new Ctor(bytes.buffer as ArrayBuffer, start, count)
      : readWords(Ctor, bytes, payloadOffset, count);
  if (data instanceof Float32Array) assertFinite(data, `${kind} frame`);

  const header: FrameHeader = {
    kind,
    iteration: view.getUint32(8, true),
    microbatch: view.getUint16(12, true),
    hop: view.getUint16(14, true),
    fromStage,
    toStage,
    dtype,
    shape,
  };
  return { header, data };
}
