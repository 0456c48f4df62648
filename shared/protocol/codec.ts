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
 *   P=20+4R ...   payload, offset 4-aligned, N = product(shape) values:
 *                   float32, int32  N 32-bit words
 *                   float16         N binary16 values (2N bytes; none Inf or NaN)
 *                   int8            uint32 blockSize, uint32 blockCount (= ceil(N / blockSize)),
 *                                   blockCount float32 scales (finite, >= 0), N int8 codes
 *
 * float16 and int8 carry float32 tensors lossily (quantize.ts): the encoder takes a Float32Array
 * and the decoder returns one. The frame ends exactly where the payload does. Works in Node and
 * browsers: only DataView / typed arrays, no Buffer. Decoded data is copied into fresh aligned
 * storage, so it never aliases the input buffer, unless the caller asks for a view of float32 /
 * int32 data with `copy: false`; `checkTensorFrame` validates a frame in place without decoding.
 * See docs/wire.md.
 */
import { DEFAULT_MAX_BYTES, IS_LITTLE_ENDIAN, asBytes, align4, readWords, resolveMaxBytes, writeWords } from './bytes';
import { assertFinite } from './finite';
import { FrameError } from './frame-error';
import { MAX_RANK, shapeSize } from './shape';
import {
  INT8_BLOCK_SIZE,
  assertScales,
  decodeFloat16,
  dequantizeInt8,
  encodeFloat16,
  firstNonFiniteHalf,
  float16Table,
  float16Value,
  int8BlockCount,
  quantizeInt8,
} from './quantize';

export { encodeNamedTensors, decodeNamedTensors } from './named-tensors';

/** ASCII magic at the start of every tensor frame. */
export const FRAME_MAGIC = 'SWRM';
/** Current tensor frame format version (the header layout; new dtypes did not change it). */
export const FRAME_VERSION = 1;
/** Default cap on a frame's total size, in bytes (64 MiB). */
export const DEFAULT_MAX_FRAME_BYTES = DEFAULT_MAX_BYTES;

export const FRAME_KINDS = ['act', 'grad', 'tokens', 'targets', 'weights'] as const;
export type FrameKind = (typeof FRAME_KINDS)[number];

export const FRAME_DTYPES = ['float32', 'int32', 'float16', 'int8'] as const;
export type FrameDtype = (typeof FRAME_DTYPES)[number];

/** Wire codes; 0 is never valid. Never renumber, only add. */
const KIND_CODES: Record<FrameKind, number> = { act: 1, grad: 2, tokens: 3, targets: 4, weights: 5 };
const DTYPE_CODES: Record<FrameDtype, number> = { float32: 1, int32: 2, float16: 3, int8: 4 };

/** Bytes before the shape: magic, version, kind, dtype, rank, iteration, mb, hop, from, to. */
const FIXED_HEADER_BYTES = 20;
/** int8 payloads start with blockSize and blockCount, uint32 each. */
const INT8_PREFIX_BYTES = 8;
/** Largest int8 block size a frame may declare. */
export const MAX_INT8_BLOCK_SIZE = 1 << 16;
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

export type TensorData = Float32Array | Int32Array;

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

/** Payload bytes of `count` values in `dtype`. */
function payloadBytes(dtype: FrameDtype, count: number, blockSize: number): number {
  switch (dtype) {
    case 'float32':
    case 'int32':
      return 4 * count;
    case 'float16':
      return 2 * count;
    case 'int8':
      return INT8_PREFIX_BYTES + 4 * int8BlockCount(count, blockSize) + count;
  }
}

/** Total encoded size in bytes of a frame carrying a tensor of `shape` as `dtype`. */
export function frameByteLength(shape: readonly number[], dtype: FrameDtype = 'float32', blockSize: number = INT8_BLOCK_SIZE): number {
  return FIXED_HEADER_BYTES + align4(4 * shape.length) + payloadBytes(dtype, shapeSize(shape), blockSize);
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
  const expectedCtor = header.dtype === 'int32' ? Int32Array : Float32Array;
  if (!(data instanceof expectedCtor)) {
    throw new FrameError('dtype', `dtype ${header.dtype} needs a ${expectedCtor.name}, got ${data?.constructor?.name}`);
  }
  checkIntField('iteration', header.iteration, 0, 0xffffffff);
  checkIntField('microbatch', header.microbatch, 0, 0xffff);
  checkIntField('hop', header.hop, 0, 0xffff);
  checkIntField('fromStage', header.fromStage, -1, 0x7fff);
  checkIntField('toStage', header.toStage, -1, 0x7fff);
  const blockSize = header.blockSize ?? INT8_BLOCK_SIZE;
  if (header.dtype === 'int8' && (!Number.isInteger(blockSize) || blockSize < 1 || blockSize > MAX_INT8_BLOCK_SIZE)) {
    throw new FrameError('blocks', `int8 block size must be an integer in 1..${MAX_INT8_BLOCK_SIZE}, got ${blockSize}`);
  }
  const count = shapeSize(header.shape);
  if (count !== data.length) {
    throw new FrameError('shape', `shape [${header.shape.join(', ')}] needs ${count} values, data has ${data.length}`);
  }
  const payloadOffset = FIXED_HEADER_BYTES + align4(4 * header.shape.length);
  const total = payloadOffset + payloadBytes(header.dtype, count, blockSize);
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
  if (header.dtype === 'float32' || header.dtype === 'int32') {
    writeWords(out, payloadOffset, data);
  } else if (header.dtype === 'float16') {
    const half = new Uint16Array(count);
    encodeFloat16(data as Float32Array, half);
    if (IS_LITTLE_ENDIAN) out.set(new Uint8Array(half.buffer), payloadOffset);
    else for (let i = 0; i < count; i++) view.setUint16(payloadOffset + 2 * i, half[i]!, true);
  } else {
    const blocks = int8BlockCount(count, blockSize);
    const scales = new Float32Array(blocks);
    const codes = new Int8Array(out.buffer, payloadOffset + INT8_PREFIX_BYTES + 4 * blocks, count);
    quantizeInt8(data as Float32Array, blockSize, scales, codes);
    view.setUint32(payloadOffset, blockSize, true);
    view.setUint32(payloadOffset + 4, blocks, true);
    writeWords(out, payloadOffset + INT8_PREFIX_BYTES, scales);
  }
  return out;
}

/** Throw FrameError('magic') unless `bytes` starts with the magic (or a prefix of it when short). */
function checkMagic(bytes: Uint8Array): void {
  const n = Math.min(bytes.length, MAGIC_BYTES.length);
  for (let i = 0; i < n; i++) {
    if (bytes[i] !== MAGIC_BYTES[i]) throw new FrameError('magic', `bad magic byte ${bytes[i]} at offset ${i}`);
  }
}

/** A frame whose header and payload length have been checked; the payload not yet. */
interface ParsedFrame {
  header: FrameHeader;
  bytes: Uint8Array;
  payloadOffset: number;
  count: number;
  /** int8: blockSize and blockCount as declared (and checked against count). */
  blockSize: number;
  blockCount: number;
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

  let blockSize = 0;
  let blockCount = 0;
  if (dtype === 'int8') {
    if (bytes.length < payloadOffset + INT8_PREFIX_BYTES) {
      throw new FrameError('truncated', `${bytes.length} bytes ends inside the int8 block header at ${payloadOffset}`);
    }
    blockSize = view.getUint32(payloadOffset, true);
    blockCount = view.getUint32(payloadOffset + 4, true);
    if (blockSize < 1 || blockSize > MAX_INT8_BLOCK_SIZE) throw new FrameError('blocks', `int8 block size ${blockSize} outside 1..${MAX_INT8_BLOCK_SIZE}`);
    const want = int8BlockCount(count, blockSize);
    if (blockCount !== want) throw new FrameError('blocks', `${blockCount} int8 blocks, but ${count} values in blocks of ${blockSize} need ${want}`);
  }

  const expectedPayload = payloadBytes(dtype, count, blockSize);
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
    ...(dtype === 'int8' ? { blockSize } : {}),
  };
  return { header, bytes, payloadOffset, count, blockSize, blockCount };
}

/** float32 words at `offset` of `bytes`: a view when alignment and byte order allow, else a copy. */
function float32At(bytes: Uint8Array, offset: number, count: number): Float32Array {
  const start = bytes.byteOffset + offset;
  return IS_LITTLE_ENDIAN && start % 4 === 0 ? new Float32Array(bytes.buffer as ArrayBuffer, start, count) : readWords(Float32Array, bytes, offset, count);
}

/** binary16 values at `offset` of `bytes`: a view when alignment and byte order allow, else a copy. */
function float16At(bytes: Uint8Array, offset: number, count: number): Uint16Array {
  const start = bytes.byteOffset + offset;
  if (IS_LITTLE_ENDIAN && start % 2 === 0) return new Uint16Array(bytes.buffer as ArrayBuffer, start, count);
  const view = new DataView(bytes.buffer, start, 2 * count);
  return Uint16Array.from({ length: count }, (_, i) => view.getUint16(2 * i, true));
}

function int8ScalesAt(p: ParsedFrame): Float32Array {
  return float32At(p.bytes, p.payloadOffset + INT8_PREFIX_BYTES, p.blockCount);
}

let pairSquares: Uint32Array | null = null;

/** q1^2 + q2^2 for every pair of int8 codes read as one little-endian 16-bit word (256 KiB, built once). */
function int8PairSquares(): Uint32Array {
  if (pairSquares) return pairSquares;
  const t = new Uint32Array(65536);
  for (let w = 0; w < 65536; w++) {
    const lo = (w << 24) >> 24;
    const hi = (w << 16) >> 24;
    t[w] = lo * lo + hi * hi;
  }
  return (pairSquares = t);
}

/**
 * Reject a payload holding a non-finite value (or, for int8, a bad scale), reading it in place,
 * and return the sum of squares of its (decoded) values, computed in the same loop: the norm of
 * a relayed frame costs the coordinator no second pass. int32 payloads are not read (null).
 *
 * float32: the squares are summed in double precision, where no finite float32 value overflows
 * (3.4e38 squared is 1.2e77, and a frame holds at most 2^24 values), so the sum is non-finite
 * exactly when some value is: only then is the payload read again, to name the first one.
 * float16: the same through the decoding table (Inf / NaN patterns decode to Inf / NaN).
 * int8: per block scale^2 * sum(q^2) (the decoded value is fround(q * scale); this is the norm of
 * the exact products), each scale checked as its block is read.
 */
function checkPayload(p: ParsedFrame): number | null {
  const { header, bytes, payloadOffset, count } = p;
  if (header.dtype === 'float32') {
    const data = float32At(bytes, payloadOffset, count);
    let sum = 0;
    for (let i = 0; i < count; i++) {
      const v = data[i]!;
      sum += v * v;
    }
    // x - x is NaN for NaN and +-Infinity.
    if (sum - sum !== 0) assertFinite(data, `${header.kind} frame`);
    return sum;
  }
  if (header.dtype === 'float16') {
    const half = float16At(bytes, payloadOffset, count);
    const t = float16Table();
    let sum = 0;
    for (let i = 0; i < count; i++) {
      const v = t[half[i]!]!;
      sum += v * v;
    }
    if (sum - sum !== 0) {
      const i = firstNonFiniteHalf(half);
      throw new FrameError('nonfinite', `${header.kind} frame[${i}] is ${float16Value(half[i]!)} (float16, ${count} values)`);
    }
    return sum;
  }
  if (header.dtype === 'int8') {
    const scales = int8ScalesAt(p);
    const codesAt = bytes.byteOffset + payloadOffset + INT8_PREFIX_BYTES + 4 * p.blockCount;
    const codes = new Int8Array(bytes.buffer, codesAt, count);
    const { blockSize } = p;
    // Two codes at a time through a table of q1^2 + q2^2 (twice as fast), when they can be read
    // as aligned 16-bit words and no block boundary falls inside a word.
    const pairs = IS_LITTLE_ENDIAN && codesAt % 2 === 0 && blockSize % 2 === 0 ? new Uint16Array(bytes.buffer, codesAt, count >> 1) : null;
    const sq = pairs ? int8PairSquares() : null;
    let sum = 0;
    for (let b = 0, start = 0; start < count; b++, start += blockSize) {
      const s = scales[b]!;
      // The first bad scale is this one: assertScales words the rejection.
      if (s - s !== 0 || s < 0) assertScales(scales);
      const end = Math.min(start + blockSize, count);
      let q2 = 0;
      if (pairs) {
        const wordEnd = end >> 1;
        for (let w = start >> 1; w < wordEnd; w++) q2 += sq![pairs[w]!]!;
        if (end % 2 === 1) q2 += codes[end - 1]! * codes[end - 1]!;
      } else {
        for (let i = start; i < end; i++) {
          const q = codes[i]!;
          q2 += q * q;
        }
      }
      sum += s * s * q2;
    }
    return sum;
  }
  return null;
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
  const { header, bytes, payloadOffset, count } = p;
  checkPayload(p);
  let data: TensorData;
  if (header.dtype === 'float32' || header.dtype === 'int32') {
    const Ctor = header.dtype === 'float32' ? Float32Array : Int32Array;
    const start = bytes.byteOffset + payloadOffset;
    data =
      limits.copy === false && IS_LITTLE_ENDIAN && start % 4 === 0
        ? new Ctor(bytes.buffer as ArrayBuffer, start, count)
        : readWords(Ctor, bytes, payloadOffset, count);
  } else if (header.dtype === 'float16') {
    data = decodeFloat16(float16At(bytes, payloadOffset, count));
  } else {
    const codes = new Int8Array(bytes.buffer, bytes.byteOffset + payloadOffset + INT8_PREFIX_BYTES + 4 * p.blockCount, count);
    data = dequantizeInt8(codes, int8ScalesAt(p), p.blockSize);
  }
  return { header, data };
}
