import { describe, expect, it } from 'vitest';
import { rejectReason } from '../../testing/reject-reason';
import {
  FRAME_DTYPES,
  FRAME_KINDS,
  decodeTensorFrame,
  encodeTensorFrame,
  frameByteLength,
  type FrameHeader,
  type TensorData,
} from './codec';
import { assertFinite, firstNonFiniteIndex } from './finite';
import { FRAME_ERROR_REASONS, FrameError, type FrameErrorReason } from './frame-error';
// Deterministic PRNG so fuzz failures are reproducible.
import { mulberry32 } from '../model/rng';


function header(overrides: Partial<FrameHeader> = {}): FrameHeader {
  return {
    kind: 'act',
    iteration: 123456,
    microbatch: 7,
    hop: 3,
    fromStage: 1,
    toStage: 2,
    dtype: 'float32',
    shape: [2, 3],
    ...overrides,
  };
}

function dataFor(h: FrameHeader, fill: (i: number) => number = (i) => i * 0.5 - 1): TensorData {
  const n = h.shape.reduce((a, b) => a * b, 1);
  const values = Array.from({ length: n }, (_, i) => fill(i));
  return h.dtype === 'float32' ? Float32Array.from(values) : Int32Array.from(values);
}

describe('tensor frame round trips', () => {
  const shapes = [[1], [5], [2, 3], [4, 1, 8], [2, 3, 4, 5], [1, 1, 1, 1]];
  // The lossless dtypes round-trip exactly; float16 / int8 have their own tests (quantize.test.ts).
  for (const kind of FRAME_KINDS) {
    for (const dtype of FRAME_DTYPES.filter((d) => d === 'float32' || d === 'int32')) {
      it(`${kind} / ${dtype}`, () => {
        for (const shape of shapes) {
          const h = header({ kind, dtype, shape });
          const data = dataFor(h, dtype === 'float32' ? (i) => Math.sin(i) * 1e3 : (i) => (i * 7919) % 50_000 - 100);
          const frame = encodeTensorFrame(h, data);
          expect(frame.length).toBe(frameByteLength(shape));
          const decoded = decodeTensorFrame(frame);
          expect(decoded.header).toEqual(h);
          expect(decoded.data).toBeInstanceOf(dtype === 'float32' ? Float32Array : Int32Array);
          expect(Array.from(decoded.data)).toEqual(Array.from(data));
        }
      });
    }
  }

  it('preserves extreme header values', () => {
    const h = header({ iteration: 0xffffffff, microbatch: 0xffff, hop: 0xffff, fromStage: -1, toStage: 0x7fff });
    expect(decodeTensorFrame(encodeTensorFrame(h, dataFor(h))).header).toEqual(h);
    const h2 = header({ iteration: 0, microbatch: 0, hop: 0, fromStage: 0, toStage: -1 });
    expect(decodeTensorFrame(encodeTensorFrame(h2, dataFor(h2))).header).toEqual(h2);
  });

  it('preserves special float values bit for bit (-0, subnormals, extremes)', () => {
    const values = [-0, 0, 1.4e-45, -3.4028234663852886e38, 3.4028234663852886e38, 1e-40];
    const h = header({ shape: [values.length] });
    const out = decodeTensorFrame(encodeTensorFrame(h, Float32Array.from(values))).data;
    expect(Object.is(out[0], -0)).toBe(true);
    expect(Array.from(out)).toEqual(Array.from(Float32Array.from(values)));
  });

  it('writes a little-endian layout with the SWRM magic', () => {
    const h = header({ kind: 'tokens', dtype: 'int32', shape: [2], iteration: 0x01020304 });
    const frame = encodeTensorFrame(h, Int32Array.from([1, -2]));
    expect(String.fromCharCode(...frame.subarray(0, 4))).toBe('SWRM');
    expect(Array.from(frame.subarray(8, 12))).toEqual([4, 3, 2, 1]);
    const payload = frame.subarray(frame.length - 8);
    expect(Array.from(payload)).toEqual([1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]);
    expect((frame.length - 8) % 4).toBe(0);
  });

  it('accepts ArrayBuffer, Node Buffer and misaligned views', () => {
    const h = header({ shape: [3, 5] });
    const data = dataFor(h);
    const frame = encodeTensorFrame(h, data);

    expect(Array.from(decodeTensorFrame(frame.buffer as ArrayBuffer).data)).toEqual(Array.from(data));
    expect(Array.from(decodeTensorFrame(Buffer.from(frame)).data)).toEqual(Array.from(data));

    for (const shift of [1, 2, 3]) {
      const backing = new Uint8Array(frame.length + shift + 5);
      backing.set(frame, shift);
      const view = backing.subarray(shift, shift + frame.length);
      const decoded = decodeTensorFrame(view);
      expect(Array.from(decoded.data)).toEqual(Array.from(data));
      // Decoded data is a copy: mutating the input afterwards does not change it.
      backing.fill(0);
      expect(Array.from(decoded.data)).toEqual(Array.from(data));
    }
  });

  it('encodes from a typed array view with an offset', () => {
    const backing = new Float32Array([9, 1, 2, 3, 9]);
    const view = backing.subarray(1, 4);
    const h = header({ shape: [3] });
    expect(Array.from(decodeTensorFrame(encodeTensorFrame(h, view)).data)).toEqual([1, 2, 3]);
  });
});

describe('tensor frame rejection', () => {
  const h = header({ shape: [4, 4] });
  const good = encodeTensorFrame(h, dataFor(h));

  it('rejects wrong magic', () => {
    const bad = good.slice();
    bad[0] = 'X'.charCodeAt(0);
    expect(rejectReason(() => decodeTensorFrame(bad))).toBe('magic');
    expect(rejectReason(() => decodeTensorFrame(new Uint8Array([1, 2])))).toBe('magic');
  });

  it('rejects non-binary input as magic', () => {
    for (const value of ['SWRM', 42, null, undefined, { length: 4 }, [83, 87, 82, 77]]) {
      expect(rejectReason(() => decodeTensorFrame(value as unknown as Uint8Array))).toBe('magic');
    }
  });

  it('rejects an unknown version, kind and dtype', () => {
    const version = good.slice();
    version[4] = 2;
    expect(rejectReason(() => decodeTensorFrame(version))).toBe('version');
    const kind = good.slice();
    kind[5] = 99;
    expect(rejectReason(() => decodeTensorFrame(kind))).toBe('kind');
    const dtype = good.slice();
    dtype[6] = 0;
    expect(rejectReason(() => decodeTensorFrame(dtype))).toBe('dtype');
  });

  it('rejects bad rank and dimensions', () => {
    for (const rank of [0, 5, 255]) {
      const bad = good.slice();
      bad[7] = rank;
      expect(rejectReason(() => decodeTensorFrame(bad))).toBe('shape');
    }
    const zeroDim = good.slice();
    new DataView(zeroDim.buffer).setUint32(20, 0, true);
    expect(rejectReason(() => decodeTensorFrame(zeroDim))).toBe('shape');
    const hugeDim = good.slice();
    new DataView(hugeDim.buffer).setUint32(20, 2 ** 24 + 1, true);
    expect(rejectReason(() => decodeTensorFrame(hugeDim))).toBe('shape');
  });

  it('rejects truncated frames at every length', () => {
    for (let len = 0; len < good.length; len++) {
      const reason = rejectReason(() => decodeTensorFrame(good.subarray(0, len)));
      expect(reason).toBe('truncated');
    }
  });

  it('rejects padded frames', () => {
    const padded = new Uint8Array(good.length + 4);
    padded.set(good);
    expect(rejectReason(() => decodeTensorFrame(padded))).toBe('size');
  });

  it('rejects shape / payload length mismatch', () => {
    const mismatch = good.slice();
    new DataView(mismatch.buffer).setUint32(20, 5, true); // claims [5, 4]: 4 more values than present
    expect(rejectReason(() => decodeTensorFrame(mismatch))).toBe('truncated');
    const smaller = good.slice();
    new DataView(smaller.buffer).setUint32(20, 3, true); // claims [3, 4]: 4 values too many
    expect(rejectReason(() => decodeTensorFrame(smaller))).toBe('size');
  });

  it('rejects stage ids below -1', () => {
    const bad = good.slice();
    new DataView(bad.buffer).setInt16(16, -2, true);
    expect(rejectReason(() => decodeTensorFrame(bad))).toBe('header');
  });

  it('rejects oversized frames', () => {
    expect(rejectReason(() => decodeTensorFrame(good, { maxBytes: good.length - 1 }))).toBe('size');
    expect(decodeTensorFrame(good, { maxBytes: good.length }).data.length).toBe(16);
    // A frame just over the 64 MiB default.
    const big = new Uint8Array(64 * 1024 * 1024 + 1);
    big.set(good.subarray(0, 28));
    expect(rejectReason(() => decodeTensorFrame(big))).toBe('size');
  });

  it('rejects non-finite float32 values but not int32 bit patterns', () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const frame = good.slice();
      new DataView(frame.buffer).setFloat32(frame.length - 4, bad, true);
      expect(rejectReason(() => decodeTensorFrame(frame))).toBe('nonfinite');
    }
    const ih = header({ dtype: 'int32', kind: 'targets', shape: [1] });
    const nanBits = new Int32Array(new Float32Array([NaN]).buffer);
    expect(Array.from(decodeTensorFrame(encodeTensorFrame(ih, nanBits)).data)).toEqual(Array.from(nanBits));
  });

  it('rejects invalid input to the encoder with the matching reason', () => {
    const f = dataFor(h);
    expect(rejectReason(() => encodeTensorFrame(header({ kind: 'nope' as never }), f))).toBe('kind');
    expect(rejectReason(() => encodeTensorFrame(header({ dtype: 'float64' as never }), f))).toBe('dtype');
    expect(rejectReason(() => encodeTensorFrame(header({ dtype: 'int32', shape: [4, 4] }), f))).toBe('dtype');
    expect(rejectReason(() => encodeTensorFrame(header({ shape: [4, 5] }), f))).toBe('shape');
    expect(rejectReason(() => encodeTensorFrame(header({ shape: [] }), new Float32Array(1)))).toBe('shape');
    expect(rejectReason(() => encodeTensorFrame(header({ shape: [1, 1, 1, 1, 1] }), new Float32Array(1)))).toBe('shape');
    expect(rejectReason(() => encodeTensorFrame(header({ shape: [0] }), new Float32Array(0)))).toBe('shape');
    expect(rejectReason(() => encodeTensorFrame(header({ shape: [1.5] }), new Float32Array(1)))).toBe('shape');
    expect(rejectReason(() => encodeTensorFrame(header({ iteration: -1 }), dataFor(header())))).toBe('header');
    expect(rejectReason(() => encodeTensorFrame(header({ iteration: 2 ** 32 }), dataFor(header())))).toBe('header');
    expect(rejectReason(() => encodeTensorFrame(header({ microbatch: 65536 }), dataFor(header())))).toBe('header');
    expect(rejectReason(() => encodeTensorFrame(header({ hop: 1.5 }), dataFor(header())))).toBe('header');
    expect(rejectReason(() => encodeTensorFrame(header({ fromStage: -2 }), dataFor(header())))).toBe('header');
    expect(rejectReason(() => encodeTensorFrame(header({ toStage: 32768 }), dataFor(header())))).toBe('header');
    expect(rejectReason(() => encodeTensorFrame(h, f, { maxBytes: 32 }))).toBe('size');
    const nan = f.slice();
    nan[3] = NaN;
    expect(rejectReason(() => encodeTensorFrame(h, nan))).toBe('nonfinite');
  });

  it('treats an invalid limit as a programming error', () => {
    expect(() => decodeTensorFrame(good, { maxBytes: 0 })).toThrow(RangeError);
    expect(() => decodeTensorFrame(good, { maxBytes: NaN })).toThrow(RangeError);
  });
});

describe('fuzzing', () => {
  function expectOnlyFrameErrors(buffers: Uint8Array[]): Set<FrameErrorReason> {
    const seen = new Set<FrameErrorReason>();
    for (const buf of buffers) {
      try {
        decodeTensorFrame(buf);
      } catch (error) {
        if (!(error instanceof FrameError)) throw new Error(`non-FrameError for ${Array.from(buf.subarray(0, 32))}: ${error}`);
        expect(FRAME_ERROR_REASONS).toContain(error.reason);
        seen.add(error.reason);
      }
    }
    return seen;
  }

  it('2,000 random buffers only ever throw FrameError', () => {
    const rand = mulberry32(0x5eed);
    const buffers = Array.from({ length: 2000 }, () => {
      const buf = new Uint8Array(Math.floor(rand() * 200));
      for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(rand() * 256);
      return buf;
    });
    expect(expectOnlyFrameErrors(buffers).has('magic')).toBe(true);
  });

  it('2,000 random buffers with a valid prefix only ever throw FrameError', () => {
    const rand = mulberry32(42);
    const buffers = Array.from({ length: 2000 }, () => {
      const buf = new Uint8Array(8 + Math.floor(rand() * 120));
      for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(rand() * 256);
      buf.set([0x53, 0x57, 0x52, 0x4d, 1, 1 + Math.floor(rand() * 5), 1 + Math.floor(rand() * 2), 1 + Math.floor(rand() * 4)]);
      return buf;
    });
    const reasons = expectOnlyFrameErrors(buffers);
    expect(reasons.size).toBeGreaterThan(2);
  });

  it('2,000 mutations of valid frames decode or throw FrameError', () => {
    const rand = mulberry32(7);
    const h = header({ shape: [2, 2, 3] });
    const good = encodeTensorFrame(h, dataFor(h));
    const buffers = Array.from({ length: 2000 }, () => {
      const buf = good.slice(0, rand() < 0.2 ? Math.floor(rand() * good.length) : good.length);
      const flips = 1 + Math.floor(rand() * 4);
      for (let k = 0; k < flips && buf.length > 0; k++) buf[Math.floor(rand() * buf.length)] = Math.floor(rand() * 256);
      return buf;
    });
    expectOnlyFrameErrors(buffers);
  });
});

describe('assertFinite', () => {
  it('accepts finite data and reports the first bad index', () => {
    expect(() => assertFinite(new Float32Array([0, -0, 1e-45, 3e38]))).not.toThrow();
    expect(() => assertFinite([1, 2, 3])).not.toThrow();
    expect(firstNonFiniteIndex([1, NaN, Infinity])).toBe(1);
    expect(firstNonFiniteIndex(new Float64Array([1, 2, -Infinity]))).toBe(2);
    expect(rejectReason(() => assertFinite(new Float32Array([1, Infinity]), 'logits'))).toBe('nonfinite');
    expect(() => assertFinite([NaN], 'loss')).toThrow(/loss\[0\]/);
  });
});

describe('validate without copying', () => {
  it('copy: false returns a view into an aligned buffer and still rejects non-finite values', () => {
    const header = { kind: 'act' as const, iteration: 1, microbatch: 0, hop: 0, fromStage: 0, toStage: -1, dtype: 'float32' as const, shape: [2, 3] };
    const bytes = encodeTensorFrame(header, Float32Array.from([1, 2, 3, 4, 5, 6]));
    const view = decodeTensorFrame(bytes, { copy: false });
    expect(view.data.buffer).toBe(bytes.buffer);
    expect(Array.from(view.data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(decodeTensorFrame(bytes).data.buffer).not.toBe(bytes.buffer);
    // an unaligned input falls back to a copy
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    expect(Array.from(decodeTensorFrame(shifted.subarray(1), { copy: false }).data)).toEqual([1, 2, 3, 4, 5, 6]);
    const bad = bytes.slice();
    new DataView(bad.buffer).setFloat32(bad.length - 4, NaN, true);
    expect(() => decodeTensorFrame(bad, { copy: false })).toThrow(FrameError);
  });
});
