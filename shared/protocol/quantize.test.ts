import { describe, expect, it } from 'vitest';
import { rejectReason } from '../../testing/reject-reason';
import { checkTensorFrame, decodeTensorFrame, encodeTensorFrame, frameByteLength, inspectTensorFrame, type FrameHeader } from './codec';
import { FrameError } from './frame-error';
import {
  FLOAT16_MAX,
  INT8_BLOCK_SIZE,
  dequantizeInt8,
  float16Bits,
  float16Value,
  int8BlockCount,
  quantizeInt8,
} from './quantize';
import { WIRE_ENCODINGS, wireFrameBytes, wireRoundTrip } from './wire-encoding';
import { mulberry32 } from '../model/rng';

/** Activation-like data: gaussian-ish values with a few large outliers, seeded. */
function activations(n: number, seed: number, outlierEvery = 997): Float32Array {
  const rand = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const g = (rand() + rand() + rand() + rand() - 2) * 1.7;
    out[i] = i % outlierEvery === 5 ? g * 300 : g * Math.exp(4 * (rand() - 0.5));
  }
  return out;
}

function header(over: Partial<FrameHeader> = {}): FrameHeader {
  return { kind: 'act', iteration: 9, microbatch: 1, hop: 2, fromStage: 1, toStage: -1, dtype: 'int8', shape: [3, 5, 64], ...over };
}

describe('float16', () => {
  it('every finite binary16 value survives value -> bits exactly; Inf/NaN patterns decode as such', () => {
    for (let h = 0; h < 65536; h++) {
      const v = float16Value(h);
      if ((h & 0x7c00) === 0x7c00) {
        expect(Number.isFinite(v)).toBe(false);
        continue;
      }
      expect(float16Bits(v)).toBe(h);
    }
  });

  it('rounds to the nearest binary16 value (ties to even) at every magnitude', () => {
    const rand = mulberry32(11);
    for (let k = 0; k < 20000; k++) {
      const x = Math.fround((rand() - 0.5) * 2 ** (Math.floor(rand() * 44) - 28));
      const h = float16Bits(x);
      const v = float16Value(h);
      const err = Math.abs(x - v);
      // Neither neighbour of the chosen value is closer.
      for (const n of [h - 1, h + 1]) {
        if (n < 0 || (n & 0x7fff) >= 0x7c00 || (n & 0x8000) !== (h & 0x8000)) continue;
        const en = Math.abs(x - float16Value(n));
        expect(err).toBeLessThanOrEqual(en);
        if (en === err) expect(h & 1).toBe(0);
      }
    }
    // Exact ties: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 and goes to the even 1.
    expect(float16Value(float16Bits(1 + 2 ** -11))).toBe(1);
    expect(float16Value(float16Bits(1 + 3 * 2 ** -11))).toBe(1 + 2 ** -9);
  });

  it('saturates at +-65504 instead of overflowing, flushes below 2^-25 to signed zero', () => {
    for (const [x, want] of [
      [65504, 65504],
      [65519, 65504],
      [65520, 65504],
      [1e30, 65504],
      [-3.4e38, -65504],
      [2 ** -24, 2 ** -24],
      [2 ** -25 * 1.01, 2 ** -24],
      [2 ** -26, 0],
    ] as const) {
      expect(float16Value(float16Bits(x))).toBe(want);
    }
    expect(Object.is(float16Value(float16Bits(-1e-30)), -0)).toBe(true);
    expect(FLOAT16_MAX).toBe(65504);
  });
});

describe('int8 blockwise quantization', () => {
  for (const blockSize of [64, 128, 256]) {
    it(`max error per block <= scale / 2 (blocks of ${blockSize}, ragged last block, outliers)`, () => {
      const n = blockSize * 37 + 19;
      const x = activations(n, blockSize);
      const blocks = int8BlockCount(n, blockSize);
      const scales = new Float32Array(blocks);
      const codes = new Int8Array(n);
      quantizeInt8(x, blockSize, scales, codes);
      const y = dequantizeInt8(codes, scales, blockSize);
      let worst = 0;
      for (let b = 0; b < blocks; b++) {
        const start = b * blockSize;
        const end = Math.min(start + blockSize, n);
        let absmax = 0;
        for (let i = start; i < end; i++) absmax = Math.max(absmax, Math.abs(x[i]!));
        const scale = scales[b]!;
        expect(scale).toBe(Math.fround(absmax / 127));
        for (let i = start; i < end; i++) {
          expect(Math.abs(codes[i]!)).toBeLessThanOrEqual(127);
          const err = Math.abs(x[i]! - y[i]!);
          // Half a step, plus the float32 rounding of q * scale.
          expect(err).toBeLessThanOrEqual(scale / 2 + Math.abs(y[i]!) * 2 ** -24);
          worst = Math.max(worst, err / scale);
        }
      }
      // The bound is tight: rounding does reach close to half a step somewhere.
      expect(worst).toBeGreaterThan(0.45);
    });
  }

  it('an outlier coarsens only its own block; a zero block decodes to exact zeros', () => {
    const n = 4 * INT8_BLOCK_SIZE;
    const x = activations(n, 3, 1e9);
    x.fill(0, 0, INT8_BLOCK_SIZE);
    x[INT8_BLOCK_SIZE + 7] = 1e4;
    const y = wireRoundTrip(x, [n], 'int8');
    expect(Array.from(y.subarray(0, INT8_BLOCK_SIZE)).every((v) => v === 0)).toBe(true);
    expect(y[INT8_BLOCK_SIZE + 7]).toBeCloseTo(1e4, 0);
    for (let i = 2 * INT8_BLOCK_SIZE; i < n; i++) expect(Math.abs(x[i]! - y[i]!)).toBeLessThan(0.05 * 6);
  });

  it('is deterministic: the same input gives the same bytes', () => {
    const x = activations(3 * 5 * 64, 5);
    const a = encodeTensorFrame(header(), x);
    const b = encodeTensorFrame(header(), Float32Array.from(x));
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
  });
});

describe('float16 and int8 frames', () => {
  const shape = [3, 5, 64];
  const x = activations(3 * 5 * 64, 7);

  it('round-trip through frames within their bounds, header included', () => {
    for (const dtype of ['float16', 'int8'] as const) {
      const h = header({ dtype });
      const frame = encodeTensorFrame(h, x);
      expect(frame.length).toBe(frameByteLength(shape, dtype));
      const d = decodeTensorFrame(frame);
      expect(d.header).toEqual(dtype === 'int8' ? { ...h, blockSize: INT8_BLOCK_SIZE } : h);
      expect(checkTensorFrame(frame)).toEqual(d.header);
      expect(d.data).toBeInstanceOf(Float32Array);
      for (let i = 0; i < x.length; i++) {
        const bound = dtype === 'float16' ? Math.abs(x[i]!) * 2 ** -11 + 2 ** -25 : (Math.max(...x.subarray(i - (i % 128), i - (i % 128) + 128).map(Math.abs)) / 127) * 0.5 + 1e-6;
        expect(Math.abs(d.data[i]! - x[i]!)).toBeLessThanOrEqual(bound);
      }
    }
  });

  it('decode from unaligned views gives the same values', () => {
    for (const dtype of ['float16', 'int8'] as const) {
      const frame = encodeTensorFrame(header({ dtype }), x);
      const want = Array.from(decodeTensorFrame(frame).data);
      for (const shift of [1, 2, 3]) {
        const backing = new Uint8Array(frame.length + shift);
        backing.set(frame, shift);
        const view = backing.subarray(shift);
        expect(Array.from(decodeTensorFrame(view).data)).toEqual(want);
        expect(checkTensorFrame(view).dtype).toBe(dtype);
      }
    }
  });

  it('bytes per hop: f16 ~0.5x and int8 <= 0.27x of f32 for activation-sized frames', () => {
    for (const s of [[4, 64, 64], [4, 128, 256], [4, 256, 512]]) {
      const f32 = wireFrameBytes(s, 'f32');
      expect(wireFrameBytes(s, 'f16') / f32).toBeLessThanOrEqual(0.501);
      expect(wireFrameBytes(s, 'int8') / f32).toBeLessThanOrEqual(0.27);
    }
    expect(WIRE_ENCODINGS).toEqual(['f32', 'f16', 'int8']);
  });

  it('f32 through wireRoundTrip is the identity; f16 / int8 equal decode(encode)', () => {
    expect(wireRoundTrip(x, shape, 'f32')).toBe(x);
    for (const [wire, dtype] of [['f16', 'float16'], ['int8', 'int8']] as const) {
      const viaFrame = decodeTensorFrame(encodeTensorFrame(header({ dtype }), x)).data;
      expect(Array.from(wireRoundTrip(x, shape, wire))).toEqual(Array.from(viaFrame));
    }
  });
});

describe('frame norms (inspectTensorFrame)', () => {
  const shape = [3, 5, 64];
  const x = activations(3 * 5 * 64, 11);
  const l2 = (d: ArrayLike<number>) => Math.sqrt(Array.from(d).reduce((a, v) => a + v * v, 0));

  it('is the L2 norm of the decoded values in every wire encoding, from aligned and unaligned views', () => {
    for (const dtype of ['float32', 'float16', 'int8'] as const) {
      const frame = encodeTensorFrame(header({ dtype }), x);
      const want = l2(decodeTensorFrame(frame).data);
      const got = inspectTensorFrame(frame);
      expect(got.header).toEqual(checkTensorFrame(frame));
      expect(Math.abs(got.norm! - want) / want).toBeLessThan(1e-6);
      const backing = new Uint8Array(frame.length + 1);
      backing.set(frame, 1);
      expect(Math.abs(inspectTensorFrame(backing.subarray(1)).norm! - want) / want).toBeLessThan(1e-6);
    }
    // An odd number of values (the last int8 block ends inside a 16-bit word), and odd blocks.
    for (const blockSize of [128, 7]) {
      const odd = encodeTensorFrame(header({ dtype: 'int8', shape: [3, 5, 7], blockSize }), x.subarray(0, 105));
      const want = l2(decodeTensorFrame(odd).data);
      expect(Math.abs(inspectTensorFrame(odd).norm! - want) / want).toBeLessThan(1e-6);
    }
    const zeros = encodeTensorFrame(header({ dtype: 'int8' }), new Float32Array(x.length));
    expect(inspectTensorFrame(zeros).norm).toBe(0);
    const tokens = encodeTensorFrame(header({ kind: 'tokens', dtype: 'int32', shape: [2, 3] }), new Int32Array(6));
    expect(inspectTensorFrame(tokens).norm).toBeNull();
  });

  it('huge finite float32 values do not overflow; a non-finite one is still named', () => {
    const big = new Float32Array(x.length).fill(3e38);
    const frame = encodeTensorFrame(header({ dtype: 'float32' }), big);
    const want = Math.fround(3e38) * Math.sqrt(big.length);
    expect(Math.abs(inspectTensorFrame(frame).norm! - want) / want).toBeLessThan(1e-12);
    const bad = frame.slice();
    new DataView(bad.buffer).setFloat32(32 + 4 * 17, Infinity, true);
    expect(() => inspectTensorFrame(bad)).toThrow(/frame\[17\] is Infinity/);
  });
});

describe('float16 / int8 frame rejection', () => {
  const shape = [2, 3, 64]; // 384 values: 3 int8 blocks
  const x = activations(384, 9);
  const int8 = encodeTensorFrame(header({ shape }), x);
  const f16 = encodeTensorFrame(header({ shape, dtype: 'float16' }), x);
  // int8 payload: at 20 + 12 = 32 (rank 3 -> 12 bytes of shape): blockSize, blockCount, 3 scales, codes.
  const P = 32;
  const both = (buf: Uint8Array, limits = {}) => {
    const a = rejectReason(() => decodeTensorFrame(buf, limits));
    const b = rejectReason(() => checkTensorFrame(buf, limits));
    expect(b).toBe(a);
    return a;
  };

  it('a frame in another encoding than expected, or an unknown encoding byte', () => {
    expect(both(int8, { dtype: 'float32' })).toBe('encoding');
    expect(both(f16, { dtype: 'int8' })).toBe('encoding');
    expect(checkTensorFrame(int8, { dtype: 'int8' }).dtype).toBe('int8');
    const unknown = int8.slice();
    unknown[6] = 5;
    expect(both(unknown)).toBe('dtype');
    // Relabelling an int8 frame as float16 breaks its length.
    const relabelled = int8.slice();
    relabelled[6] = 3;
    expect(['truncated', 'size']).toContain(both(relabelled));
  });

  it('truncated scales and codes, at every length', () => {
    for (let len = 0; len < int8.length; len++) expect(both(int8.subarray(0, len))).toBe('truncated');
    for (let len = 0; len < f16.length; len++) expect(both(f16.subarray(0, len))).toBe('truncated');
  });

  it('non-finite scales (nonfinite, as non-finite values are) and negative scales', () => {
    for (const [bad, reason] of [
      [NaN, 'nonfinite'],
      [Infinity, 'nonfinite'],
      [-Infinity, 'nonfinite'],
      [-1, 'scale'],
      [-1e-30, 'scale'],
    ] as const) {
      for (const block of [0, 2]) {
        const frame = int8.slice();
        new DataView(frame.buffer).setFloat32(P + 8 + 4 * block, bad, true);
        expect(both(frame)).toBe(reason);
      }
    }
  });

  it('mismatched block counts and bad block sizes', () => {
    for (const [size, count] of [
      [128, 2],
      [128, 4],
      [64, 3],
      [0, 3],
      [2 ** 17, 1],
    ]) {
      const frame = int8.slice();
      const v = new DataView(frame.buffer);
      v.setUint32(P, size!, true);
      v.setUint32(P + 4, count!, true);
      expect(both(frame)).toBe('blocks');
    }
    expect(rejectReason(() => encodeTensorFrame(header({ shape, blockSize: 0 }), x))).toBe('blocks');
  });

  it('float16 Inf and NaN values', () => {
    for (const bits of [0x7c00, 0xfc00, 0x7e00, 0x7c01]) {
      const frame = f16.slice();
      new DataView(frame.buffer).setUint16(frame.length - 2, bits, true);
      expect(both(frame)).toBe('nonfinite');
    }
  });

  it('the encoders refuse non-finite input and the wrong array type', () => {
    const nan = x.slice();
    nan[100] = NaN;
    expect(rejectReason(() => encodeTensorFrame(header({ shape }), nan))).toBe('nonfinite');
    expect(rejectReason(() => encodeTensorFrame(header({ shape, dtype: 'float16' }), nan))).toBe('nonfinite');
    expect(rejectReason(() => encodeTensorFrame(header({ shape }), new Int32Array(384)))).toBe('dtype');
  });

  it('2,000 mutations of int8 and float16 frames decode or throw FrameError', () => {
    const rand = mulberry32(77);
    for (const good of [int8, f16]) {
      for (let k = 0; k < 1000; k++) {
        const buf = good.slice(0, rand() < 0.2 ? Math.floor(rand() * good.length) : good.length);
        for (let f = 0; f < 1 + Math.floor(rand() * 4) && buf.length > 0; f++) buf[Math.floor(rand() * Math.min(buf.length, 64))] = Math.floor(rand() * 256);
        try {
          const d = decodeTensorFrame(buf);
          expect(d.data.every((v) => Number.isFinite(v))).toBe(true);
        } catch (e) {
          expect(e).toBeInstanceOf(FrameError);
        }
      }
    }
  });
});
