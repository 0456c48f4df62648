/** The receiver-side check of a hop's frame (what the coordinator's relay-check.ts checks today, plus the receiving stage). */
import { describe, it, expect } from 'vitest';
import { checkHopFrame, type ExpectedHopFrame } from './hop-frame-check.js';
import { encodeTensorFrame, type FrameHeader } from './codec.js';
import { FrameError } from './frame-error.js';
import { WIRE_DTYPES } from './wire-encoding.js';

const shape = [2, 4, 8];
const want: ExpectedHopFrame = { kind: 'act', iteration: 3, microbatch: 1, hop: 2, fromStage: 1, toStage: 2, shape, wire: 'f32' };
const header = (over: Partial<FrameHeader> = {}): FrameHeader => ({ kind: 'act', iteration: 3, microbatch: 1, hop: 2, fromStage: 1, toStage: 2, dtype: 'float32', shape, ...over });
const values = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) * 2);
const norm = Math.sqrt(values.reduce((s, v) => s + v * v, 0));

function reason(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof FrameError) return e.reason;
    throw e;
  }
  return 'accepted';
}

describe('checkHopFrame', () => {
  it('accepts the frame the hop asked for and returns its L2 norm, for every wire encoding', () => {
    expect(checkHopFrame(encodeTensorFrame(header(), values), want, 1 << 20)).toBeCloseTo(norm, 4);
    for (const wire of ['f16', 'int8'] as const) {
      const f = encodeTensorFrame(header({ dtype: WIRE_DTYPES[wire] }), values);
      expect(checkHopFrame(f, { ...want, wire }, 1 << 20)).toBeCloseTo(norm, 1);
    }
  });

  it('rejects a frame for another stage, hop, kind, shape or encoding, a NaN and an oversized frame', () => {
    const ok = encodeTensorFrame(header(), values);
    expect(reason(() => checkHopFrame(encodeTensorFrame(header({ toStage: 3 }), values), want, 1 << 20))).toBe('header');
    expect(reason(() => checkHopFrame(encodeTensorFrame(header({ hop: 1 }), values), want, 1 << 20))).toBe('header');
    expect(reason(() => checkHopFrame(encodeTensorFrame(header({ kind: 'grad' }), values), want, 1 << 20))).toBe('header');
    expect(reason(() => checkHopFrame(encodeTensorFrame(header({ shape: [2, 8, 4] }), values), want, 1 << 20))).toBe('shape');
    expect(reason(() => checkHopFrame(encodeTensorFrame(header({ dtype: 'float16' }), values), want, 1 << 20))).toBe('encoding');
    expect(reason(() => checkHopFrame(ok, want, 100))).toBe('size');
    const nan = ok.slice();
    new DataView(nan.buffer).setFloat32(nan.byteLength - 4, NaN, true);
    expect(reason(() => checkHopFrame(nan, want, 1 << 20))).toBe('nonfinite');
    // Without toStage (the coordinator's view) the receiving stage is not checked.
    expect(reason(() => checkHopFrame(encodeTensorFrame(header({ toStage: 3 }), values), { ...want, toStage: undefined }, 1 << 20))).toBe('accepted');
  });
});
