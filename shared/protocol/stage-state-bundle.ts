/**
 * A stage's full training state (weights + Adam moments + step + lr) as one named-tensor bundle:
 * what the checkpoint baseline stores on disk and the redundant baseline keeps on a neighbour.
 * Names: `w:<param>`, `m:<param>`, `v:<param>`, and `adam:step`, `adam:lr` (one value each).
 */
import type { NamedWeights, OptimizerState } from '../model/stage.js';
import { decodeNamedTensors, encodeNamedTensors, type BundleLimits, type NamedTensor } from './named-tensors.js';
import { ENCODE_UNLIMITED } from './state-bundle-limits.js';
import { FrameError } from './frame-error.js';

export interface StageState {
  weights: NamedWeights;
  optimizer: OptimizerState | null;
}

/** Named flat weights as a bundle (each tensor stored flat). */
export function encodeWeights(weights: NamedWeights): Uint8Array {
  const rec: Record<string, NamedTensor> = {};
  for (const [n, d] of Object.entries(weights)) rec[n] = { shape: [d.length], data: d };
  return encodeNamedTensors(rec);
}

/** A plain weight bundle (names without prefixes) as named flat weights. */
export function decodeWeights(bytes: Uint8Array): NamedWeights {
  const out: NamedWeights = {};
  for (const [n, t] of Object.entries(decodeNamedTensors(bytes))) out[n] = t.data;
  return out;
}

/** Never refused for its size (a `base` state is ~102 MB): the decoder bounds it (state-bundle-limits.ts). */
export function encodeStageState(s: StageState, limits: BundleLimits = ENCODE_UNLIMITED): Uint8Array {
  const rec: Record<string, NamedTensor> = {};
  const flat = (d: Float32Array): NamedTensor => ({ shape: [d.length], data: d });
  for (const [n, d] of Object.entries(s.weights)) rec[`w:${n}`] = flat(d);
  if (s.optimizer) {
    for (const [n, d] of Object.entries(s.optimizer.m)) rec[`m:${n}`] = flat(d);
    for (const [n, d] of Object.entries(s.optimizer.v)) rec[`v:${n}`] = flat(d);
    rec['adam:step'] = flat(Float32Array.of(s.optimizer.step));
    rec['adam:lr'] = flat(Float32Array.of(s.optimizer.lr));
  }
  return encodeNamedTensors(rec, limits);
}

/** Decodes a bundle from encodeStageState; plain weight bundles (no prefixes) are accepted too. */
export function decodeStageState(bytes: Uint8Array, limits: BundleLimits = {}): StageState {
  const weights: NamedWeights = {};
  const m: NamedWeights = {};
  const v: NamedWeights = {};
  let step: number | null = null;
  let lr: number | null = null;
  for (const [name, t] of Object.entries(decodeNamedTensors(bytes, limits))) {
    if (name === 'adam:step') step = t.data[0]!;
    else if (name === 'adam:lr') lr = t.data[0]!;
    else if (name.startsWith('w:')) weights[name.slice(2)] = t.data;
    else if (name.startsWith('m:')) m[name.slice(2)] = t.data;
    else if (name.startsWith('v:')) v[name.slice(2)] = t.data;
    else weights[name] = t.data;
  }
  if ((step === null) !== (lr === null)) throw new FrameError('header', 'stage state has only one of adam:step and adam:lr');
  return { weights, optimizer: step !== null && lr !== null ? { step, lr, m, v } : null };
}
