/**
 * Size limits for the bundles that hold whole copies of a stage's parameters: a stage state
 * (weights + Adam m and v, stage-state-bundle.ts) and a diloco outer state (synced weights +
 * momentum, shared/dp/diloco-state.ts). From `base` up these exceed the named-tensor codec's
 * default 64 MiB (a `base` stage state is ~102 MB), so a decoder bounds them by the stage's own
 * size instead: `copies` float32 copies of every parameter, a header entry per tensor, slack.
 * Encoding what this process holds is never refused for its size (ENCODE_UNLIMITED); the
 * receiving side checks.
 */
import { DEFAULT_MAX_BYTES } from './bytes';
import type { BundleLimits } from './named-tensors';
import { numStages, type ResolvedConfig } from '../model/config';
import { stageParamSpecs } from '../model/params';

/** Header bytes a bundle spends per tensor at most (JSON entry with a long name and shape). */
const BYTES_PER_TENSOR = 400;
const SLACK_BYTES = 64 * 1024;

/** No size limit: for encoding one's own state (the decoder enforces the limit). */
export const ENCODE_UNLIMITED: BundleLimits = { maxBytes: Number.MAX_SAFE_INTEGER };

/** The limit for a bundle of `copies` copies of the parameters `specs` (never below the codec's default). */
export function stateBundleLimits(specs: readonly { shape: readonly number[] }[], copies: number): BundleLimits {
  const values = specs.reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  return { maxBytes: Math.max(DEFAULT_MAX_BYTES, copies * (4 * values + BYTES_PER_TENSOR * specs.length) + SLACK_BYTES) };
}

/**
 * The limit for a replica a tab keeps for the coordinator (`put_replica`): at most a whole stage
 * state (the `redundant` strategy's copy: weights + Adam m and v) of the model's largest stage,
 * since the holder is not told which stage's copy it holds.
 */
export function replicaBundleLimits(config: ResolvedConfig): BundleLimits {
  let maxBytes = 0;
  for (let s = 0; s < numStages(config); s++) maxBytes = Math.max(maxBytes, stateBundleLimits(stageParamSpecs(config, s), 3).maxBytes!);
  return { maxBytes };
}
