import { describe, it, expect } from 'vitest';
import { weightsDigest } from './digest.js';

describe('weightsDigest', () => {
  const w = () => ({ 'a.w': Float32Array.from([1, 2, 3]), 'b.w': Float32Array.from([0.5, -0.25]) });

  it('is the same for the same bits, whatever the key order, and 16 hex digits', () => {
    const x = w();
    const y = { 'b.w': x['b.w'], 'a.w': x['a.w'] };
    expect(weightsDigest(x)).toBe(weightsDigest(y));
    expect(weightsDigest(x)).toMatch(/^[0-9a-f]{16}$/);
  });

  it('changes when one value moves by one ulp, when values move between parameters, or a name is missing', () => {
    const base = weightsDigest(w());
    const ulp = w();
    new Uint32Array(ulp['a.w'].buffer)[1]! += 1;
    expect(weightsDigest(ulp)).not.toBe(base);
    expect(weightsDigest({ 'a.w': Float32Array.from([1, 2]), 'b.w': Float32Array.from([3, 0.5, -0.25]) })).not.toBe(base);
    expect(weightsDigest({ 'a.w': w()['a.w'] })).not.toBe(base);
  });

  it('reads only the view of a subarray', () => {
    const big = Float32Array.from([9, 1, 2, 3, 9]);
    expect(weightsDigest({ 'a.w': big.subarray(1, 4), 'b.w': Float32Array.from([0.5, -0.25]) })).toBe(weightsDigest(w()));
  });
});
