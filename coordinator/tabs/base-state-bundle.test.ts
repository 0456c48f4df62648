/**
 * From `base` up a stage's state (weights + Adam moments, ~102 MB) and its diloco outer state
 * (~68 MB) are larger than the named-tensor codec's default 64 MiB: they must still encode, pass
 * the coordinator's checks and decode on the tab, while a bundle larger than the stage's own size
 * is still refused (shared/protocol/state-bundle-limits.ts).
 */
import { describe, it, expect } from 'vitest';
import { DEFAULT_SETTINGS, modelConfigOf } from '../../shared/run-settings.js';
import { stageParamSpecs } from '../../shared/model/params.js';
import { flatLength } from '../../shared/dp/flat-weights.js';
import { decodeDilocoState, encodeDilocoState } from '../../shared/dp/diloco-state.js';
import { DEFAULT_MAX_BYTES, encodeStageState, type StageState } from '../../shared/protocol/index.js';
import { replicaBundleLimits, stateBundleLimits } from '../../shared/protocol/state-bundle-limits.js';
import { decodeNamedTensors } from '../../shared/protocol/named-tensors.js';
import type { NamedWeights } from '../../shared/model/stage.js';
import { checkStageState } from './bundle-check.js';

describe('stage and diloco states of a base stage', () => {
  const config = modelConfigOf({ ...DEFAULT_SETTINGS, preset: 'base', stages: 4 });
  const specs = stageParamSpecs(config, 1);
  const zeros = (): NamedWeights => Object.fromEntries(specs.map((s) => [s.name, new Float32Array(s.shape.reduce((a, b) => a * b, 1))]));

  it('a state over 64 MiB encodes and passes checkStageState; one with an extra copy of the weights does not', () => {
    const state: StageState = { weights: zeros(), optimizer: { step: 7, lr: 1e-3, m: zeros(), v: zeros() } };
    const bytes = encodeStageState(state);
    expect(bytes.byteLength).toBeGreaterThan(DEFAULT_MAX_BYTES);
    expect(checkStageState(config, 1, bytes).optimizer?.step).toBe(7);
    // A fourth copy (extra tensors under other names) is more than any state of this stage.
    const padded = encodeStageState({ weights: { ...state.weights, ...Object.fromEntries(Object.entries(zeros()).map(([n, d]) => [`pad_${n.replace(/\./g, '_')}`, d])) }, optimizer: state.optimizer });
    expect(() => checkStageState(config, 1, padded)).toThrow(/exceeds limit/);
  });

  it('a diloco state over 64 MiB decodes within the stage limit for two copies', () => {
    const n = flatLength(specs);
    const bytes = encodeDilocoState({ synced: new Float32Array(n), momentum: new Float32Array(n), syncs: 3 });
    expect(bytes.byteLength).toBeGreaterThan(DEFAULT_MAX_BYTES);
    expect(() => decodeDilocoState(bytes, n)).toThrow(/exceeds limit/);
    expect(decodeDilocoState(bytes, n, stateBundleLimits(specs, 2)).syncs).toBe(3);
  });

  it("a tab keeps the redundant strategy's copy of any stage (put_replica), but not one padded past the largest stage", () => {
    const state: StageState = { weights: zeros(), optimizer: { step: 2, lr: 1e-3, m: zeros(), v: zeros() } };
    const bytes = encodeStageState(state);
    expect(() => decodeNamedTensors(bytes)).toThrow(/exceeds limit/);
    const limits = replicaBundleLimits(config);
    expect(Object.keys(decodeNamedTensors(bytes, limits)).length).toBeGreaterThan(0);
    const padded = encodeStageState({ weights: { ...state.weights, ...Object.fromEntries(Object.entries(zeros()).map(([n, d]) => [`pad_${n.replace(/\./g, '_')}`, d])) }, optimizer: state.optimizer });
    expect(padded.byteLength).toBeGreaterThan(limits.maxBytes!);
    expect(() => decodeNamedTensors(padded, limits)).toThrow(/exceeds limit/);
  });
});

