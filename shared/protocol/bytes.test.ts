import { describe, expect, it } from 'vitest';
import { FrameError } from './frame-error';
import { align4, asBytes, readWords, readWordsPortable, writeWords, writeWordsPortable } from './bytes';

describe('byte helpers', () => {
  it('align4 rounds up to a multiple of 4', () => {
    expect([0, 1, 2, 3, 4, 5, 8, 9].map(align4)).toEqual([0, 4, 4, 4, 4, 8, 8, 12]);
  });

  it('asBytes views ArrayBuffers and any ArrayBufferView without copying', () => {
    const buffer = new ArrayBuffer(16);
    expect(asBytes(buffer).buffer).toBe(buffer);
    const view = asBytes(new DataView(buffer, 4, 8));
    expect([view.byteOffset, view.length, view.buffer === buffer]).toEqual([4, 8, true]);
    const floats = asBytes(new Float32Array(buffer, 8, 2));
    expect([floats.byteOffset, floats.length]).toEqual([8, 8]);
    expect(() => asBytes('nope')).toThrow(FrameError);
  });

  it('fast and portable word copies agree, at misaligned offsets too', () => {
    const floats = new Float32Array([1.5, -0, 3.4e38, -1e-40, 42]);
    const ints = new Int32Array([0, -1, 2 ** 31 - 1, -(2 ** 31), 7]);
    for (const data of [floats, ints]) {
      for (const offset of [0, 1, 2, 3]) {
        const fast = new Uint8Array(offset + data.byteLength);
        const portable = new Uint8Array(offset + data.byteLength);
        writeWords(fast, offset, data);
        writeWordsPortable(portable, offset, data);
        expect(Array.from(fast)).toEqual(Array.from(portable));

        const Ctor = data instanceof Float32Array ? Float32Array : Int32Array;
        const a = readWords(Ctor, fast, offset, data.length);
        const b = readWordsPortable(Ctor, fast, offset, data.length);
        expect(a).toBeInstanceOf(Ctor);
        expect(Array.from(a)).toEqual(Array.from(data));
        expect(Array.from(b)).toEqual(Array.from(data));
      }
    }
  });

  it('writes little-endian bytes', () => {
    const out = new Uint8Array(4);
    writeWordsPortable(out, 0, new Int32Array([0x01020304]));
    expect(Array.from(out)).toEqual([4, 3, 2, 1]);
  });
});
