import { describe, it, expect } from 'vitest';
import { PseudoGradSum, PseudoGradSumError } from './pseudo-grad-sum.js';
import { averageInOrder } from './average.js';
import { pseudoGradOutliers } from './screen-pseudo-gradients.js';
import { normalArray } from '../model/rng.js';

const N = 600;
const CHUNK = 256; // chunks of 256, 256, 88

describe('PseudoGradSum', () => {
  it('completes each chunk when its last replica delivers, in any arrival order, with the ordered mean', () => {
    const parts = ['a', 'b', 'c'].map((_, i) => normalArray(N, 0.1, 10 + i));
    const sum = new PseudoGradSum(['a', 'b', 'c'], N, { chunkValues: CHUNK });
    expect(sum.chunks.map((c) => c.count)).toEqual([256, 256, 88]);
    const out = new Float32Array(N);
    const sl = (p: Float32Array, c: number) => p.subarray(c * CHUNK, Math.min(N, (c + 1) * CHUNK));
    // c delivers first, a last: the mean is still summed in slot order a, b, c.
    expect(sum.add('c', 0, sl(parts[2]!, 0))).toBeNull();
    expect(sum.add('b', 0, sl(parts[1]!, 0))).toBeNull();
    for (const c of [1, 2]) for (const k of [2, 1]) expect(sum.add(['a', 'b', 'c'][k]!, c, sl(parts[k]!, c))).toBeNull();
    for (const c of [2, 0, 1]) {
      const done = sum.add('a', c, sl(parts[0]!, c))!;
      expect(done.chunk.index).toBe(c);
      expect(done.count).toBe(3);
      out.set(done.mean, done.chunk.start);
    }
    expect(sum.complete()).toBe(true);
    expect(out).toEqual(averageInOrder(parts));
    const mean = averageInOrder(parts);
    const rel = (p: Float32Array) => Math.sqrt(p.reduce((a, x, i) => a + (x - mean[i]!) ** 2, 0) / mean.reduce((a, x) => a + x * x, 0));
    expect(sum.drift()).toBeCloseTo((rel(parts[0]!) + rel(parts[1]!) + rel(parts[2]!)) / 3, 5);
    const norms = sum.norms();
    expect(norms.get('b')).toBeCloseTo(Math.hypot(...parts[1]!), 4);
  });

  it('a replica dropped mid-sync is left out of the chunks not yet completed, which the drop may complete', () => {
    const a = normalArray(N, 1, 1);
    const b = normalArray(N, 1, 2);
    const sum = new PseudoGradSum([0, 1], N, { chunkValues: CHUNK });
    const first = sum.add(0, 0, a.subarray(0, 256));
    expect(first).toBeNull();
    expect(sum.add(1, 0, b.subarray(0, 256))!.mean).toEqual(averageInOrder([a.subarray(0, 256), b.subarray(0, 256)]));
    sum.add(0, 1, a.subarray(256, 512));
    const completed = sum.drop(1);
    expect(completed.map((c) => [c.chunk.index, c.count])).toEqual([[1, 1]]);
    expect(completed[0]!.mean).toEqual(a.subarray(256, 512));
    expect(sum.add(0, 2, a.subarray(512))!.count).toBe(1);
    expect(sum.complete()).toBe(true);
  });

  it('rejects strangers, duplicates, wrong sizes and out-of-range chunks', () => {
    const sum = new PseudoGradSum(['a', 'b'], N, { chunkValues: CHUNK });
    expect(() => sum.add('z', 0, new Float32Array(256))).toThrow(/not in this sync/);
    expect(() => sum.add('a', 3, new Float32Array(256))).toThrow(/out of range/);
    expect(() => sum.add('a', 2, new Float32Array(256))).toThrow(/expected 88/);
    sum.add('a', 0, new Float32Array(256));
    expect(() => sum.add('a', 0, new Float32Array(256))).toThrow(/twice/);
    expect(() => new PseudoGradSum(['a', 'a'], N)).toThrow(/duplicate/);
  });

  it('a screened outlier is left out of its chunk and every later one; history catches a liar among two', () => {
    const honest = normalArray(N, 0.01, 5);
    const liar = normalArray(N, 5, 6);
    const history = [0.16, 0.15, 0.17]; // the group's accepted norms of this chunk at earlier syncs
    const screen = (norms: Map<string, number>) => {
      const ks = [...norms.keys()];
      return pseudoGradOutliers(ks.map((k) => norms.get(k)!), history).map((i) => ks[i]!);
    };
    const sum = new PseudoGradSum(['h', 'l'], N, { chunkValues: CHUNK, screen });
    sum.add('l', 0, liar.subarray(0, 256));
    const done = sum.add('h', 0, honest.subarray(0, 256))!;
    expect(done.rejected).toEqual(['l']);
    expect(done.count).toBe(1);
    expect(done.mean).toEqual(honest.subarray(0, 256));
    expect(sum.replicas()).toEqual(['h']);
    expect(sum.add('h', 1, honest.subarray(256, 512))!.count).toBe(1);
    const all = new PseudoGradSum(['l'], N, { chunkValues: CHUNK, screen });
    expect(() => all.add('l', 0, liar.subarray(0, 256))).toThrow(PseudoGradSumError);
  });
});

describe('pseudoGradOutliers', () => {
  it('flags non-finite norms and norms both 10x the reference and above the floor', () => {
    expect(pseudoGradOutliers([1, 1.2, 0.9], [])).toEqual([]);
    expect(pseudoGradOutliers([1, 40, 1.1], [])).toEqual([1]);
    expect(pseudoGradOutliers([0.01, 0.5], [0.01, 0.012])).toEqual([]); // 0.5 is under the floor of 1
    expect(pseudoGradOutliers([2, 80], [2, 2.1, 1.9])).toEqual([1]);
    expect(pseudoGradOutliers([NaN, 1], [])).toEqual([0]);
  });
});
