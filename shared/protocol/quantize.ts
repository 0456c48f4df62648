/**
 * Lossy wire encodings of float32 tensors, in plain JS on the Float32Array a tab reads back from
 * its backend, so the same input gives the same bytes on every backend (WebGPU, wasm, cpu) and in
 * the local trainer:
 *
 *   float16  IEEE binary16, round to nearest even; magnitudes above 65504 saturate to +-65504
 *            (never Inf), below 2^-25 flush to zero through the subnormals.
 *   int8     blockwise absmax: every block of `blockSize` consecutive values has one float32
 *            scale = fround(absmax / 127) and int8 codes q = clamp(round(x / scale), -127, 127);
 *            x is read back as fround(q * scale). An outlier only coarsens its own block.
 *
 * Per value, |x - decoded| <= scale / 2 (+ one float32 rounding of the product) for int8 and half
 * an ulp of binary16 for float16 (see quantize.test.ts).
 */
import { FrameError } from './frame-error';

/** Values per int8 block (one float32 scale each: 4 / 128 = 3.1% overhead). */
export const INT8_BLOCK_SIZE = 128;
/** Largest code magnitude; -128 is never produced, so the code range is symmetric. */
export const INT8_MAX_CODE = 127;
/** Largest finite binary16 value. */
export const FLOAT16_MAX = 65504;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** binary16 bits of `x` (a finite float32 value), round to nearest even, saturating at +-65504. */
export function float16Bits(x: number): number {
  f32[0] = x;
  return halfOfFloatBits(u32[0]!);
}

/** binary16 bits of the float32 whose bit pattern is `u`. */
function halfOfFloatBits(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7bff; // callers check finiteness first; saturate, never Inf/NaN
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 31) return sign | 0x7bff;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: zero
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
  if (h >= 0x7c00) h = 0x7bff; // rounding carried into the Inf exponent
  return sign | h;
}

let halfTable: Float32Array | null = null;

/** float32 value of every binary16 bit pattern (built once: 256 KiB). */
export function float16Table(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? sign * m * 2 ** -24 : e === 31 ? (m ? NaN : sign * Infinity) : sign * (1024 + m) * 2 ** (e - 25);
  }
  return (halfTable = t);
}

/** float32 value of binary16 bits `h`. */
export function float16Value(h: number): number {
  return float16Table()[h & 0xffff]!;
}

/** Encode `data` (finite) as binary16 into `out` (same length). */
export function encodeFloat16(data: Float32Array, out: Uint16Array): void {
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  for (let i = 0; i < data.length; i++) out[i] = halfOfFloatBits(bits[i]!);
}

/** Decode binary16 values into a fresh Float32Array. */
export function decodeFloat16(half: Uint16Array): Float32Array {
  const t = float16Table();
  const out = new Float32Array(half.length);
  for (let i = 0; i < half.length; i++) out[i] = t[half[i]!]!;
  return out;
}

/** Index of the first Inf or NaN binary16 value (exponent all ones), or -1. */
export function firstNonFiniteHalf(half: Uint16Array): number {
  for (let i = 0; i < half.length; i++) if ((half[i]! & 0x7c00) === 0x7c00) return i;
  return -1;
}

/** Number of int8 blocks (and scales) for `count` values. */
export function int8BlockCount(count: number, blockSize: number = INT8_BLOCK_SIZE): number {
  return Math.ceil(count / blockSize);
}

/**
 * Quantize `data` (finite) blockwise: one scale per block into `scales`, codes into `codes`.
 * Deterministic: IEEE double arithmetic on float32 inputs, the same in every JS engine.
 */
export function quantizeInt8(data: Float32Array, blockSize: number, scales: Float32Array, codes: Int8Array): void {
  const n = data.length;
  for (let b = 0, start = 0; start < n; b++, start += blockSize) {
    const end = Math.min(start + blockSize, n);
    let absmax = 0;
    for (let i = start; i < end; i++) {
      const a = Math.abs(data[i]!);
      if (a > absmax) absmax = a;
    }
    const scale = Math.fround(absmax / INT8_MAX_CODE);
    scales[b] = scale;
    if (scale === 0) {
      codes.fill(0, start, end);
      continue;
    }
    for (let i = start; i < end; i++) {
      const q = Math.round(data[i]! / scale);
      codes[i] = q > INT8_MAX_CODE ? INT8_MAX_CODE : q < -INT8_MAX_CODE ? -INT8_MAX_CODE : q;
    }
  }
}

/** Read blockwise int8 codes back as float32: fround(q * scale) (the product is exact in a double). */
export function dequantizeInt8(codes: Int8Array, scales: Float32Array, blockSize: number): Float32Array {
  const out = new Float32Array(codes.length);
  for (let b = 0, start = 0; start < codes.length; b++, start += blockSize) {
    const scale = scales[b]!;
    const end = Math.min(start + blockSize, codes.length);
    for (let i = start; i < end; i++) out[i] = codes[i]! * scale;
  }
  return out;
}

/**
 * Reject bad int8 scales: a NaN or +-Infinity is FrameError('nonfinite') (the tensor it encodes
 * is non-finite: the coordinator quarantines such a tab, as for float values); a negative scale
 * (the encoder never writes one) is FrameError('scale').
 */
export function assertScales(scales: ArrayLike<number>): void {
  for (let i = 0; i < scales.length; i++) {
    const s = scales[i]!;
    // s - s is NaN for NaN and +-Infinity.
    if (s - s !== 0) throw new FrameError('nonfinite', `int8 block ${i} has scale ${s} (${scales.length} blocks)`);
    if (s < 0) throw new FrameError('scale', `int8 block ${i} has negative scale ${s} (${scales.length} blocks)`);
  }
}
