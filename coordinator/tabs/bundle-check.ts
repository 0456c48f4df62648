/**
 * Nothing a tab uploads is trusted before it is checked: every weight, state or gradient bundle
 * pulled from a tab is decoded and checked against the stage's parameter specs (names, sizes,
 * finite values) before the coordinator stores it or hands it to another tab.
 */
import type { ResolvedConfig } from '../../shared/model/config.js';
import { stageParamSpecs } from '../../shared/model/params.js';
import { validateWeights, type NamedWeights } from '../../shared/model/stage.js';
import { decodeStageState, decodeWeights, encodeStageState, type StageState } from '../../shared/protocol/index.js';
import type { Volunteer } from './registry.js';
import type { BundleTransfer } from './bundle-transfer.js';
import { ASK_TIMEOUT_MS } from './ask-stage.js';
import { stateBundleLimits } from '../../shared/protocol/state-bundle-limits.js';

export class BundleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BundleError';
  }
}

function guard<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new BundleError(`${what}: ${(e as Error).message}`);
  }
}

/** A full stage state (weights, optionally Adam moments): every parameter present and finite. */
export function checkStageState(config: ResolvedConfig, stage: number, bytes: Uint8Array): StageState {
  return guard(`stage ${stage} state`, () => {
    const specs = stageParamSpecs(config, stage);
    const state = decodeStageState(bytes, stateBundleLimits(specs, 3));
    validateWeights(specs, state.weights);
    if (state.optimizer) {
      validateWeights(specs, state.optimizer.m, { partial: true });
      validateWeights(specs, state.optimizer.v, { partial: true });
      if (!(Number.isInteger(state.optimizer.step) && state.optimizer.step >= 0)) throw new Error(`bad Adam step ${state.optimizer.step}`);
      if (!(state.optimizer.lr > 0 && Number.isFinite(state.optimizer.lr))) throw new Error(`bad Adam lr ${state.optimizer.lr}`);
    }
    return state;
  });
}

/**
 * Pulls `source`'s full state of `stage` (weights and Adam) and re-encodes it from the checked
 * values, so only validated numbers are handed on to another tab. Throws when the pull or the
 * check fails.
 */
export async function pullStageState(transfer: BundleTransfer, config: ResolvedConfig, stage: number, source: Volunteer): Promise<Uint8Array> {
  const raw = await transfer.pull(source, { event: 'get_weights', parts: 'state' }, ASK_TIMEOUT_MS.state);
  return encodeStageState(checkStageState(config, stage, raw));
}

/**
 * Named weights of a stage: all of them, or only the names `only` admits (an embedding or head
 * part, a gradient bundle that may omit parameters a replica never touched).
 */
export function checkWeights(config: ResolvedConfig, stage: number, bytes: Uint8Array, opts: { partial?: boolean; only?: (name: string) => boolean } = {}): NamedWeights {
  return guard(`stage ${stage} weights`, () => {
    const w = decodeWeights(bytes);
    const specs = stageParamSpecs(config, stage).filter((s) => !opts.only || opts.only(s.name));
    validateWeights(specs, w, { partial: opts.partial ?? false });
    return w;
  });
}
