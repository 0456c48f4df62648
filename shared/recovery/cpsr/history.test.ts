import { describe, expect, it } from 'vitest';
import { CheckpointHistory } from './history.js';
import { CpsrError } from './errors.js';
import { CpsrPredictor } from './predictor.js';

describe('CheckpointHistory', () => {
  it('keeps the newest `capacity` states as copies', () => {
    const h = new CheckpointHistory({ capacity: 3, maxBytes: 1024 });
    const s = new Float32Array([1, 2]);
    for (const it of [0, 5, 7, 20]) {
      s[0] = it;
      h.add(it, s);
    }
    expect(h.iterations).toEqual([5, 7, 20]);
    expect(h.states.map((x) => x[0])).toEqual([5, 7, 20]);
    expect(h.bytes).toBe(3 * 2 * 4);
    h.dropAfter(7);
    expect(h.iterations).toEqual([5, 7]);
  });

  it('rejects malformed states with a clear error and keeps what it had', () => {
    const h = new CheckpointHistory({ capacity: 4, maxBytes: 1024 });
    h.add(10, new Float32Array(4));
    expect(() => h.add(10, new Float32Array(4))).toThrow(/not after the last one kept \(10\)/);
    expect(() => h.add(11, new Float32Array(5))).toThrow(/has 5 values, the history holds 4/);
    expect(() => h.add(12, Float32Array.of(0, NaN, 0, 0))).toThrow(/value 1 is not finite/);
    expect(() => h.add(13, Float32Array.of(0, Infinity, 0, 0))).toThrow(CpsrError);
    expect(() => h.add(-1 as number, new Float32Array(4))).toThrow(/non-negative integer/);
    expect(() => h.add(1.5, new Float32Array(4))).toThrow(/non-negative integer/);
    expect(() => h.add(14, [0, 0, 0, 0] as unknown as Float32Array)).toThrow(/Float32Array/);
    expect(h.iterations).toEqual([10]);
  });

  it('refuses a history over its memory bound before keeping anything', () => {
    const h = new CheckpointHistory({ capacity: 16, maxBytes: 1000 });
    expect(() => h.add(0, new Float32Array(16))).toThrow(/needs 1024 bytes, over the bound of 1000/);
    expect(h.size).toBe(0);
    expect(() => new CheckpointHistory({ capacity: 0, maxBytes: 1 })).toThrow(/capacity/);
  });

  it('from(): validates untrusted entries (from disk or a peer)', () => {
    const limits = { capacity: 4, maxBytes: 1 << 20 };
    expect(CheckpointHistory.from([{ iteration: 1, state: new Float32Array(2) }, { iteration: 3, state: new Float32Array(2) }], limits).size).toBe(2);
    expect(() => CheckpointHistory.from([{ iteration: 1, state: [1, 2] }], limits)).toThrow(/must be a Float32Array/);
    expect(() => CheckpointHistory.from([null as unknown as { iteration: number; state: Float32Array }], limits)).toThrow(/must be an object/);
    expect(() => CheckpointHistory.from('x' as unknown as [], limits)).toThrow(/must be an array/);
    expect(() => CheckpointHistory.from([{ iteration: '2', state: new Float32Array(2) }], limits)).toThrow(/non-negative integer/);
  });

  it('a bad predictor configuration is refused', () => {
    expect(() => new CpsrPredictor({ ...new CpsrPredictor().config, window: 1 })).toThrow(/window must be an integer in 2..64/);
    expect(() => new CpsrPredictor({ ...new CpsrPredictor().config, lr: NaN })).toThrow(/lr/);
  });
});

describe('flat weights', () => {
  it('round-trips in the layout order and checks sizes', async () => {
    const { flattenWeights, unflattenWeights } = await import('./flat.js');
    const specs = [
      { name: 'a', globalName: 'a', shape: [2, 2], init: 'normal' as const },
      { name: 'b', globalName: 'b', shape: [3], init: 'ones' as const },
    ];
    const w = { b: Float32Array.of(5, 6, 7), a: Float32Array.of(1, 2, 3, 4) };
    const flat = flattenWeights(w, specs);
    expect(Array.from(flat)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(unflattenWeights(flat, specs)).toEqual(w);
    expect(() => flattenWeights({ a: w.a }, specs)).toThrow(/b must be a Float32Array of 3 values/);
    expect(() => unflattenWeights(new Float32Array(6), specs)).toThrow(/has 6 values, the stage has 7/);
  });
});
