/**
 * The payload encodings of a tensor frame (codec.ts), one codec per dtype: its size, how it is
 * written, checked (finite values, int8 scales) and read back. The frame header says which one a
 * payload uses; codec.ts looks it up in PAYLOAD_CODECS and never tests a dtype by name.
 *
 *   float32, int32  N 32-bit words
 *   float16         N binary16 values (2N bytes; none Inf or NaN)
 *   int8            uint32 blockSize, uint32 blockCount (= ceil(N / blockSize)),
 *                   blockCount float32 scales (finite, >= 0), N int8 codes
 *
 * float16 and int8 carry float32 tensors lossily (quantize.ts).
 */
import { IS_LITTLE_ENDIAN, readWords, writeWords } from './bytes';
import { assertFinite } from './finite';
import { FrameError } from './frame-error';
import {
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

export const FRAME_DTYPES = ['float32', 'int32', 'float16', 'int8'] as const;
export type FrameDtype = (typeof FRAME_DTYPES)[number];

export type TensorData = Float32Array | Int32Array;

/** int8 payloads start with blockSize and blockCount, uint32 each. */
const INT8_PREFIX_BYTES = 8;
/** Largest int8 block size a frame may declare. */
export const MAX_INT8_BLOCK_SIZE = 1 << 16;

/** A payload whose length and block layout have been checked; its values not yet. */
export interface Payload {
  bytes: Uint8Array;
  /** Where the payload starts in `bytes`. */
  offset: number;
  /** Values it holds (the product of the frame's shape). */
  count: number;
  /** int8: values per scale block and the number of blocks, as declared; 0 for other dtypes. */
  blockSize: number;
  blockCount: number;
}

/** How one dtype travels. */
export interface PayloadCodec {
  /** The typed array the encoder takes and the decoder returns. */
  readonly array: Float32ArrayConstructor | Int32ArrayConstructor;
  /** Payload bytes of `count` values (`blockSize`: int8 only). */
  byteLength(count: number, blockSize: number): number;
  /** Write `data` (already checked: its type, length and finiteness) as the payload at `offset` of `out`. */
  write(out: Uint8Array, offset: number, data: TensorData, blockSize: number): void;
  /**
   * Reject a non-finite value (or a bad int8 scale) reading the payload in place, and return the
   * sum of squares of its decoded values, computed in the same loop; null when the values are not
   * read (int32). `what` names the frame in errors.
   */
  sumOfSquares(p: Payload, what: string): number | null;
  /** The decoded values: fresh storage, or a view of a float32 / int32 payload when `view` and alignment allow. */
  read(p: Payload, view: boolean): TensorData;
  /** Blocked payloads (int8) only: throw FrameError('blocks') for a block size the encoder may not use. */
  checkBlockSize?(blockSize: number): void;
  /** Blocked payloads (int8) only: read and check the block layout declared at the payload's start. */
  readBlocks?(bytes: Uint8Array, offset: number, count: number): { blockSize: number; blockCount: number };
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

/** A float32 or int32 payload: words as they are. */
function wordCodec(array: Float32ArrayConstructor | Int32ArrayConstructor): Omit<PayloadCodec, 'sumOfSquares'> {
  return {
    array,
    byteLength: (count) => 4 * count,
    write: (out, offset, data) => writeWords(out, offset, data),
    read: ({ bytes, offset, count }, view) => {
      const start = bytes.byteOffset + offset;
      return view && IS_LITTLE_ENDIAN && start % 4 === 0 ? new array(bytes.buffer as ArrayBuffer, start, count) : readWords(array, bytes, offset, count);
    },
  };
}

/*
 * float32: the squares are summed in double precision, where no finite float32 value overflows
 * (3.4e38 squared is 1.2e77, and a frame holds at most 2^24 values), so the sum is non-finite
 * exactly when some value is: only then is the payload read again, to name the first one.
 */
const float32: PayloadCodec = {
  ...wordCodec(Float32Array),
  sumOfSquares: ({ bytes, offset, count }, what) => {
    const data = float32At(bytes, offset, count);
    let sum = 0;
    for (let i = 0; i < count; i++) {
      const v = data[i]!;
      sum += v * v;
    }
    // x - x is NaN for NaN and +-Infinity.
    if (sum - sum !== 0) assertFinite(data, what);
    return sum;
  },
};

const int32: PayloadCodec = { ...wordCodec(Int32Array), sumOfSquares: () => null };

/* float16: as float32, through the decoding table (Inf / NaN patterns decode to Inf / NaN). */
const float16: PayloadCodec = {
  array: Float32Array,
  byteLength: (count) => 2 * count,
  write: (out, offset, data) => {
    const count = data.length;
    const half = new Uint16Array(count);
    encodeFloat16(data as Float32Array, half);
    if (IS_LITTLE_ENDIAN) out.set(new Uint8Array(half.buffer), offset);
    else {
      const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
      for (let i = 0; i < count; i++) view.setUint16(offset + 2 * i, half[i]!, true);
    }
  },
  sumOfSquares: ({ bytes, offset, count }, what) => {
    const half = float16At(bytes, offset, count);
    const t = float16Table();
    let sum = 0;
    for (let i = 0; i < count; i++) {
      const v = t[half[i]!]!;
      sum += v * v;
    }
    if (sum - sum !== 0) {
      const i = firstNonFiniteHalf(half);
      throw new FrameError('nonfinite', `${what}[${i}] is ${float16Value(half[i]!)} (float16, ${count} values)`);
    }
    return sum;
  },
  read: ({ bytes, offset, count }) => decodeFloat16(float16At(bytes, offset, count)),
};

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

function int8Scales(p: Payload): Float32Array {
  return float32At(p.bytes, p.offset + INT8_PREFIX_BYTES, p.blockCount);
}

/** Byte offset of the int8 codes within the payload's buffer. */
function int8CodesAt(p: Payload): number {
  return p.bytes.byteOffset + p.offset + INT8_PREFIX_BYTES + 4 * p.blockCount;
}

const int8: PayloadCodec = {
  array: Float32Array,
  byteLength: (count, blockSize) => INT8_PREFIX_BYTES + 4 * int8BlockCount(count, blockSize) + count,
  write: (out, offset, data, blockSize) => {
    const count = data.length;
    const blocks = int8BlockCount(count, blockSize);
    const scales = new Float32Array(blocks);
    const codes = new Int8Array(out.buffer, out.byteOffset + offset + INT8_PREFIX_BYTES + 4 * blocks, count);
    quantizeInt8(data as Float32Array, blockSize, scales, codes);
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    view.setUint32(offset, blockSize, true);
    view.setUint32(offset + 4, blocks, true);
    writeWords(out, offset + INT8_PREFIX_BYTES, scales);
  },
  /*
   * Per block scale^2 * sum(q^2) (the decoded value is fround(q * scale); this is the norm of the
   * exact products), each scale checked as its block is read.
   */
  sumOfSquares: (p) => {
    const { bytes, count, blockSize } = p;
    const scales = int8Scales(p);
    const codesAt = int8CodesAt(p);
    const codes = new Int8Array(bytes.buffer, codesAt, count);
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
  },
  read: (p) => dequantizeInt8(new Int8Array(p.bytes.buffer, int8CodesAt(p), p.count), int8Scales(p), p.blockSize),
  checkBlockSize: (blockSize) => {
    if (!Number.isInteger(blockSize) || blockSize < 1 || blockSize > MAX_INT8_BLOCK_SIZE) {
      throw new FrameError('blocks', `int8 block size must be an integer in 1..${MAX_INT8_BLOCK_SIZE}, got ${blockSize}`);
    }
  },
  readBlocks: (bytes, offset, count) => {
    if (bytes.length < offset + INT8_PREFIX_BYTES) {
      throw new FrameError('truncated', `${bytes.length} bytes ends inside the int8 block header at ${offset}`);
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const blockSize = view.getUint32(offset, true);
    const blockCount = view.getUint32(offset + 4, true);
    if (blockSize < 1 || blockSize > MAX_INT8_BLOCK_SIZE) throw new FrameError('blocks', `int8 block size ${blockSize} outside 1..${MAX_INT8_BLOCK_SIZE}`);
    const want = int8BlockCount(count, blockSize);
    if (blockCount !== want) throw new FrameError('blocks', `${blockCount} int8 blocks, but ${count} values in blocks of ${blockSize} need ${want}`);
    return { blockSize, blockCount };
  },
};

/** Every dtype's codec. */
export const PAYLOAD_CODECS: Record<FrameDtype, PayloadCodec> = { float32, int32, float16, int8 };
