/**
 * The bundles a benchmark-only paced volunteer (bench/paced-volunteer.ts) uploads when the
 * coordinator asks, of the TRUE sizes and encodings for its stage: the stage's weights
 * (`get_weights all`), its embedding or head part (CheckFree's replicas), its full state with
 * Adam moments (`get_weights state`, what a joining replica copies), its gradient (`get_grads`,
 * exact data parallelism) and its diloco outer state (`get_weights diloco`). The values are zeros
 * (finite, so every check the coordinator runs passes): a float32 bundle's size does not depend on
 * them, and the volunteer never computes. Each is encoded once per stage and shared by every
 * volunteer of the process (a `base` state is ~100 MB).
 */
import type { ResolvedConfig } from '../shared/model/config.js';
import type { NamedWeights } from '../shared/model/stage.js';
import { stageParamSpecs } from '../shared/model/params.js';
import { flatLength } from '../shared/dp/flat-weights.js';
import { encodeDilocoState } from '../shared/dp/diloco-state.js';
import { encodeStageState, encodeWeights } from '../shared/protocol/index.js';

export type PacedBundle = 'all' | 'embed' | 'head' | 'state' | 'grads' | 'diloco';

const cache = new Map<string, Uint8Array>();

function zeros(config: ResolvedConfig, stage: number, only?: string): NamedWeights {
  const w: NamedWeights = {};
  for (const s of stageParamSpecs(config, stage)) {
    if (!only || s.name.startsWith(`${only}.`)) w[s.name] = new Float32Array(s.shape.reduce((a, b) => a * b, 1));
  }
  return w;
}

/** Bundle `kind` of `stage` (true size, zero values), encoded once per config, stage and kind. */
export function pacedBundle(config: ResolvedConfig, stage: number, kind: PacedBundle, lr: number): Uint8Array {
  const key = `${JSON.stringify(config)}|${stage}|${kind}|${lr}`;
  let b = cache.get(key);
  if (b) return b;
  switch (kind) {
    case 'all':
    case 'grads':
      b = encodeWeights(zeros(config, stage));
      break;
    case 'embed':
    case 'head':
      b = encodeWeights(zeros(config, stage, kind));
      break;
    case 'state':
      b = encodeStageState({ weights: zeros(config, stage), optimizer: { step: 0, lr, m: zeros(config, stage), v: zeros(config, stage) } });
      break;
    case 'diloco': {
      const n = flatLength(stageParamSpecs(config, stage));
      b = encodeDilocoState({ synced: new Float32Array(n), momentum: new Float32Array(n), syncs: 0 });
      break;
    }
  }
  cache.set(key, b);
  return b;
}
