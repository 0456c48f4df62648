/**
 * A stage's named weights as one flat Float32Array, in the stage's parameter order
 * (shared/model/params.ts stageParamSpecs): what pseudo-gradients, the synced weights and the
 * outer momentum are, so that chunks of a sync are plain ranges both ends compute alike.
 */
import type { ParamSpec } from '../model/params.js';
import { sizeOf } from '../model/params.js';
import type { NamedWeights } from '../model/stage.js';

/** Total parameter count of `specs`. */
export function flatLength(specs: readonly ParamSpec[]): number {
  return specs.reduce((n, s) => n + sizeOf(s.shape), 0);
}

/** Concatenates `weights` in spec order (every parameter required, sizes checked). */
export function flattenWeights(specs: readonly ParamSpec[], weights: NamedWeights): Float32Array {
  const out = new Float32Array(flatLength(specs));
  let at = 0;
  for (const s of specs) {
    const w = weights[s.name];
    const n = sizeOf(s.shape);
    if (!w) throw new RangeError(`missing parameter "${s.name}"`);
    if (w.length !== n) throw new RangeError(`parameter "${s.name}" has ${w.length} values, expected ${n}`);
    out.set(w, at);
    at += n;
  }
  return out;
}

/** Splits a flat vector back into named weights (views into `flat`, no copy). */
export function unflattenWeights(specs: readonly ParamSpec[], flat: Float32Array): NamedWeights {
  if (flat.length !== flatLength(specs)) throw new RangeError(`flat weights have ${flat.length} values, expected ${flatLength(specs)}`);
  const out: NamedWeights = {};
  let at = 0;
  for (const s of specs) {
    const n = sizeOf(s.shape);
    out[s.name] = flat.subarray(at, at + n);
    at += n;
  }
  return out;
}
