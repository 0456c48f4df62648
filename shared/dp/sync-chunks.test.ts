import { describe, it, expect } from 'vitest';
import { chunkOf, decodeSyncChunk, encodeSyncChunk, syncBytes, syncChunks, syncChunkBytes, syncRoundTrip } from './sync-chunks.js';
import { FrameError } from '../protocol/frame-error.js';
import { normalArray } from '../model/rng.js';

const up = { stage: 2, iteration: 19, direction: 'up' as const, wire: 'int8' as const };

describe('sync chunks', () => {
  it('cut a vector into block-aligned chunks covering it exactly', () => {
    expect(syncChunks(1000, 256)).toEqual([
      { index: 0, start: 0, count: 256 },
      { index: 1, start: 256, count: 256 },
      { index: 2, start: 512, count: 256 },
      { index: 3, start: 768, count: 232 },
    ]);
    expect(() => syncChunks(1000, 100)).toThrow(/multiple of 128/);
    expect(() => syncChunks(0)).toThrow(RangeError);
  });

  it('round-trip int8 within half a block scale per value, and f32 exactly', () => {
    const x = normalArray(3000, 0.01, 7);
    const y = syncRoundTrip(x, up, 1024);
    for (let b = 0; b < 3000; b += 128) {
      const blk = x.subarray(b, b + 128);
      const scale = Math.max(...Array.from(blk, Math.abs)) / 127;
      for (let i = 0; i < blk.length; i++) expect(Math.abs(y[b + i]! - blk[i]!)).toBeLessThanOrEqual(scale / 2 + 1e-9);
    }
    expect(syncRoundTrip(x, { ...up, wire: 'f32' })).toEqual(x);
  });

  it('byte counts match actual encodes (int8: 1 byte per value + 4 per 128-value block + header)', () => {
    const x = normalArray(5000, 1, 1);
    const cs = syncChunks(5000, 2048);
    const actual = cs.reduce((n, c) => n + encodeSyncChunk(up, c, chunkOf(x, c)).byteLength, 0);
    expect(actual).toBe(syncBytes(5000, 'int8', 2048));
    expect(syncChunkBytes(2048, 'int8')).toBe(24 + 8 + 4 * 16 + 2048);
    expect(syncChunkBytes(2048, 'f32')).toBe(24 + 4 * 2048);
  });

  it('reject a chunk that is not the one expected (stage, iteration, index, direction, size, dtype) and garbage', () => {
    const x = normalArray(1024, 1, 3);
    const [c0, c1] = syncChunks(1024, 512);
    const f = encodeSyncChunk(up, c0!, chunkOf(x, c0!));
    expect(decodeSyncChunk(f, up, c0!).length).toBe(512);
    expect(() => decodeSyncChunk(f, up, c1!)).toThrow(/chunk index/);
    expect(() => decodeSyncChunk(f, { ...up, stage: 1 }, c0!)).toThrow(/route/);
    expect(() => decodeSyncChunk(f, { ...up, iteration: 18 }, c0!)).toThrow(/iteration/);
    expect(() => decodeSyncChunk(f, { ...up, direction: 'down' }, c0!)).toThrow(/route/);
    expect(() => decodeSyncChunk(f, { ...up, wire: 'f16' }, c0!)).toThrow(FrameError);
    expect(() => decodeSyncChunk(new Uint8Array(64), up, c0!)).toThrow(FrameError);
    const nan = Float32Array.from(x);
    nan[3] = NaN;
    expect(() => encodeSyncChunk(up, c0!, chunkOf(nan, c0!))).toThrow(FrameError);
    const bad = Uint8Array.from(f);
    new DataView(bad.buffer).setFloat32(24 + 8, NaN, true); // first int8 scale
    expect(() => decodeSyncChunk(bad, up, c0!)).toThrow(/nonfinite/);
  });
});
