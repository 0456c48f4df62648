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
 *   6       1     dtype code (DTYPE_CODES): the payload's wire encoding
 *   7       1     rank R, 1..4
 *   8       4     iteration, uint32
 *   12      2     microbatch, uint16
 *   14      2     hop, uint16
 *   16      2     fromStage, int16 (-1 = coordinator)
 *   18      2     toStage, int16 (-1 = coordinator)
 *   20      4*R   shape, uint32 each, every dim 1..2^24
 *   P=20+4R ...   payload, offset 4-aligned, N = product(shape) values in the dtype's
 *                 encoding (payload-codecs.ts: one codec per dtype)
 *
 * float16 and int8 carry float32 tensors lossily (quantize.ts): the encoder takes a Float32Array
 * and the decoder returns one. The frame ends exactly where the payload does. Works in Node and
 * browsers: only DataView / typed arrays, no Buffer. Decoded data is copied into fresh aligned
 * storage, so it never aliases the input buffer, unless the caller asks for a view of float32 /
 * int32 data with `copy: false`; `checkTensorFrame` validates a frame in place without decoding.
 * See docs/wire.md.
 */
import { DEFAULT_MAX_BYTES, asBytes, align4, resolveMaxBytes } from './bytes';
import { assertFinite } from './finite';
import { FrameError } from './frame-error';
import { PAYLOAD_CODECS, type FrameDtype, type Payload, type TensorData } from './payload-codecs';
import { INT8_BLOCK_SIZE } from './quantize';
import { MAX_RANK, shapeSize } from './shape';

export { FRAME_DTYPES, MAX_INT8_BLOCK_SIZE, type FrameDtype, type TensorData } from './payload-codecs';
export { encodeNamedTensors, decodeNamedTensors } from './named-tensors';

/** ASCII magic at the start of every tensor frame. */
export const FRAME_MAGIC = 'SWRM';
/** Current tensor frame format version (the header layout; new dtypes did not change it). */
export const FRAME_VERSION = 1;
/** Default cap on a frame's total size, in bytes (64 MiB). */
export const DEFAULT_MAX_FRAME_BYTES = DEFAULT_MAX_BYTES;

export const FRAME_KINDS = ['act', 'grad', 'tokens', 'targets', 'weights'] as const;
export type FrameKind = (typeof FRAME_KINDS)[number];

/** Wire codes; 0 is never valid. Never renumber, only add. */
const KIND_CODES: Record<FrameKind, number> = { act: 1, grad: 2, tokens: 3, targets: 4, weights: 5 };
const DTYPE_CODES: Record<FrameDtype, number> = { float32: 1, int32: 2, float16: 3, int8: 4 };

/** Bytes before the shape: magic, version, kind, dtype, rank, iteration, mb, hop, from, to. */
const FIXED_HEADER_BYTES = 20;
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
  /** int8 only: values per scale block (encoder default INT8_BLOCK_SIZE; always set when decoded). */
  blockSize?: number;
}

export interface DecodedFrame {
  header: FrameHeader;
  /** Int32Array for int32 frames, Float32Array for every other dtype (float16 / int8 decoded). */
  data: TensorData;
}

export interface FrameLimits {
  /** Reject frames larger than this many bytes. Defaults to 64 MiB. */
  maxBytes?: number;
  /**
   * false: return a float32 / int32 payload as a view into `buf` when its alignment allows,
   * instead of a copy. Default true. float16 / int8 payloads are always decoded into fresh storage.
   */
  copy?: boolean;
  /** Decoding only: reject with 'encoding' unless the frame's dtype is this one (a run's wire encoding). */
  dtype?: FrameDtype;
}

function codeToName<T extends string>(codes: Record<T, number>, code: number): T | undefined {
  return (Object.keys(codes) as T[]).find((name) => codes[name] === code);
}

/** Total encoded size in bytes of a frame carrying a tensor of `shape` as `dtype`. */
export function frameByteLength(shape: readonly number[], dtype: FrameDtype = 'float32', blockSize: number = INT8_BLOCK_SIZE): number {
  return FIXED_HEADER_BYTES + align4(4 * shape.length) + PAYLOAD_CODECS[dtype].byteLength(shapeSize(shape), blockSize);
}

function checkIntField(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new FrameError('header', `${name} must be an integer in ${min}..${max}, got ${value}`);
  }
}

/**
 * Encode one tensor as a frame. float32, float16 and int8 take a Float32Array (float16 / int8
 * quantize it: quantize.ts), int32 an Int32Array. Throws `FrameError` for anything the decoder
 * would reject: bad header fields, a data array that does not match dtype or shape, non-finite
 * values, a bad int8 block size, or a frame over `limits.maxBytes`.
 */
export function encodeTensorFrame(header: FrameHeader, data: TensorData, limits: FrameLimits = {}): Uint8Array {
  const maxBytes = resolveMaxBytes(limits.maxBytes);
  if (!Object.hasOwn(KIND_CODES, header.kind)) throw new FrameError('kind', `unknown kind ${String(header.kind)}`);
  if (!Object.hasOwn(DTYPE_CODES, header.dtype)) throw new FrameError('dtype', `unknown dtype ${String(header.dtype)}`);
  const codec = PAYLOAD_CODECS[header.dtype];
  const expectedCtor = codec.array;
  if (!(data instanceof expectedCtor)) {
    throw new FrameError('dtype', `dtype ${header.dtype} needs a ${expectedCtor.name}, got ${data?.constructor?.name}`);
  }
  checkIntField('iteration', header.iteration, 0, 0xffffffff);
  checkIntField('microbatch', header.microbatch, 0, 0xffff);
  checkIntField('hop', header.hop, 0, 0xffff);
  checkIntField('fromStage', header.fromStage, -1, 0x7fff);
  checkIntField('toStage', header.toStage, -1, 0x7fff);
  const blockSize = header.blockSize ?? INT8_BLOCK_SIZE;
  codec.checkBlockSize?.(blockSize);
  const count = shapeSize(header.shape);
  if (count !== data.length) {
    throw new FrameError('shape', `shape [${header.shape.join(', ')}] needs ${count} values, data has ${data.length}`);
  }
  const payloadOffset = FIXED_HEADER_BYTES + align4(4 * header.shape.length);
  const total = payloadOffset + codec.byteLength(count, blockSize);
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
  codec.write(out, payloadOffset, data, blockSize);
  return out;
}

/** Throw FrameError('magic') unless `bytes` starts with the magic (or a prefix of it when short). */
function checkMagic(bytes: Uint8Array): void {
  const n = Math.min(bytes.length, MAGIC_BYTES.length);
  for (let i = 0; i < n; i++) {
    if (bytes[i] !== MAGIC_BYTES[i]) throw new FrameError('magic', `bad magic byte ${bytes[i]} at offset ${i}`);
  }
}

/** A frame whose header and payload length have been checked; the payload's values not yet. */
interface ParsedFrame {
  header: FrameHeader;
  payload: Payload;
}

/** Check everything but the payload's values: header fields, shape, lengths, int8 block layout. */
function parseFrame(buf: Uint8Array | ArrayBuffer, limits: FrameLimits): ParsedFrame {
  const maxBytes = resolveMaxBytes(limits.maxBytes);
  const bytes = asBytes(buf);
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
  if (limits.dtype !== undefined && dtype !== limits.dtype) throw new FrameError('encoding', `expected a ${limits.dtype} frame, got ${dtype}`);
  // After the encoding check (so a frame in the wrong encoding says so), before reading further.
  if (bytes.length > maxBytes) throw new FrameError('size', `frame of ${bytes.length} bytes exceeds limit ${maxBytes}`);
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

  const codec = PAYLOAD_CODECS[dtype];
  const { blockSize, blockCount } = codec.readBlocks?.(bytes, payloadOffset, count) ?? { blockSize: 0, blockCount: 0 };

  const expectedPayload = codec.byteLength(count, blockSize);
  const actualPayload = bytes.length - payloadOffset;
  if (actualPayload < expectedPayload) {
    throw new FrameError('truncated', `payload has ${actualPayload} bytes, ${dtype} shape [${shape.join(', ')}] needs ${expectedPayload}`);
  }
  if (actualPayload > expectedPayload) {
    throw new FrameError('size', `payload has ${actualPayload} bytes, ${dtype} shape [${shape.join(', ')}] needs only ${expectedPayload}`);
  }

  const header: FrameHeader = {
    kind,
    iteration: view.getUint32(8, true),
    microbatch: view.getUint16(12, true),
    hop: view.getUint16(14, true),
    fromStage,
    toStage,
    dtype,
    shape,
    ...(codec.readBlocks ? { blockSize } : {}),
  };
  return { header, payload: { bytes, offset: payloadOffset, count, blockSize, blockCount } };
}

/**
 * Reject a payload holding a non-finite value (or, for int8, a bad scale), reading it in place,
 * and return the sum of squares of its (decoded) values, computed in the same loop: the norm of
 * a relayed frame costs the coordinator no second pass. int32 payloads are not read (null).
 */
function checkPayload({ header, payload }: ParsedFrame): number | null {
  return PAYLOAD_CODECS[header.dtype].sumOfSquares(payload, `${header.kind} frame`);
}

/** A checked frame's header and the L2 norm of its values (null for int32 frames). */
export interface FrameInspection {
  header: FrameHeader;
  norm: number | null;
}

/**
 * Validate a frame without decoding or copying its payload (validate-and-forward): everything
 * `decodeTensorFrame` checks, including finiteness of float32 / float16 values and int8 scales.
 * Returns the header; every rejection is a `FrameError`.
 */
export function checkTensorFrame(buf: Uint8Array | ArrayBuffer, limits: FrameLimits = {}): FrameHeader {
  return inspectTensorFrame(buf, limits).header;
}

/**
 * `checkTensorFrame`, and the L2 norm of the frame's decoded values, computed in the loop that
 * checks their finiteness (one pass over the payload, no copy). The coordinator keeps relayed
 * frames' norms per sender (coordinator/relay-norms.ts).
 */
export function inspectTensorFrame(buf: Uint8Array | ArrayBuffer, limits: FrameLimits = {}): FrameInspection {
  const p = parseFrame(buf, limits);
  const sum = checkPayload(p);
  return { header: p.header, norm: sum === null ? null : Math.sqrt(sum) };
}

/**
 * Decode and validate a frame. Accepts a Uint8Array (including Node Buffers
 * and views at any byteOffset) or an ArrayBuffer. Every rejection is a
 * `FrameError`; the returned data is a fresh copy (see `FrameLimits.copy`).
 */
export function decodeTensorFrame(buf: Uint8Array | ArrayBuffer, limits: FrameLimits = {}): DecodedFrame {
  const p = parseFrame(buf, limits);
  checkPayload(p);
  return { header: p.header, data: PAYLOAD_CODECS[p.header.dtype].read(p.payload, limits.copy === false) };
}
