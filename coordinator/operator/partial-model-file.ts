/**
 * Export-then-evaluate with part of the model (SkipPipe, docs/skippipe.md#run-with-part-of-the-model):
 * the stages of an operator's subset (stage 0 and S-1 included, in order: evalOrder) as a model of
 * their own. Every stage holds layersPerStage blocks and a block does not depend on its position
 * in the stack (RoPE is by token position), so the subset of k stages is exactly a model of
 * k x layersPerStage layers split into k stages, stage i holding stage order[i]'s weights under
 * the same stage-local names: the file loads and evaluates like any export (model-file.ts) and
 * gives the partial validation loss the tabs measure along `order` (partial-eval.ts).
 */
import { configForStages, type ResolvedConfig } from '../../shared/model/config.js';
import { stageParamSpecs } from '../../shared/model/params.js';
import type { NamedWeights } from '../../shared/model/stage.js';

/** The config of the subset `order` of `config`'s stages, and which source stage each new stage takes. */
export function partialModelConfig(config: ResolvedConfig, order: readonly number[]): ResolvedConfig {
  const { layersPerStage, ...base } = config;
  const sub = configForStages({ ...base, nLayers: order.length * layersPerStage }, order.length);
  // The stage-local names must line up (embedding on the first, head on the last, blocks in between).
  order.forEach((src, i) => {
    const a = stageParamSpecs(sub, i).map((p) => `${p.name}:${p.shape.join('x')}`).join(',');
    const b = stageParamSpecs(config, src).map((p) => `${p.name}:${p.shape.join('x')}`).join(',');
    if (a !== b) throw new Error(`stage ${src} does not fit position ${i} of a ${order.length}-stage partial model`);
  });
  return sub;
}

/** The partial model's per-stage weights: stage i of the new model is stage order[i] of `weights` (by source stage). */
export function partialModelWeights(order: readonly number[], weights: ReadonlyMap<number, NamedWeights>): NamedWeights[] {
  return order.map((s) => {
    const w = weights.get(s);
    if (!w) throw new Error(`no weights of stage ${s}`);
    return w;
  });
}
