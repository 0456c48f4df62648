/**
 * A stage's named weights as one flat Float32Array in its parameter layout's order (what the
 * checkpoint history and the predictor work on), and back. Both directions check every tensor's
 * presence and size.
 */
import type { ParamSpec } from '../../model/params.js';
import { sizeOf } from '../../model/params.js';
import { CpsrError } from './errors.js';

export type Named = Record<string, Float32Array>;

export function flatLength(specs: readonly ParamSpec[]): number {
  return specs.reduce((a, s) => a + sizeOf(s.shape), 0);
}

export function flattenWeights(weights: Named, specs: readonly ParamSpec[]): Float32Array {
  const out = new Float32Array(flatLength(specs));
  let o = 0;
  for (const s of specs) {
    const w = weights[s.name];
    const n = sizeOf(s.shape);
    if (!(w instanceof Float32Array) || w.length !== n) throw new CpsrError(`weights: ${s.name} must be a Float32Array of ${n} values, got ${w instanceof Float32Array ? w.length : typeof w}`);
    out.set(w, o);
    o += n;
  }
  return out;
}

export function unflattenWeights(flat: Float32Array, specs: readonly ParamSpec[]): Named {
  const total = flatLength(specs);
  if (flat.length !== total) throw new CpsrError(`flat state has ${flat.length} values, the stage has ${total}`);
  const out: Named = {};
  let o = 0;
  for (const s of specs) {
    const n = sizeOf(s.shape);
    out[s.name] = flat.slice(o, o + n);
    o += n;
  }
  return out;
}
