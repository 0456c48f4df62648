/**
 * The named parameter layout of a pipeline stage.
 *
 * Recovery averages stages tensor by tensor, so names are *stage-local* and every block stage
 * with the same number of layers has identical names and shapes:
 *
 *   embed.weight                   [vocab, d]      first stage only
 *   blocks.{j}.attn_norm.weight    [d]             j = 0 .. layersPerStage-1
 *   blocks.{j}.attn.wq|wk|wv|wo    [d, d]          (x @ W convention: [in, out])
 *   blocks.{j}.mlp_norm.weight     [d]
 *   blocks.{j}.mlp.w_gate|w_up     [d, ffHidden]
 *   blocks.{j}.mlp.w_down          [ffHidden, d]
 *   head.norm.weight               [d]             last stage only
 *   head.lm_head                   [d, vocab]      last stage only (untied from the embedding)
 *
 * Initial values depend only on the seed and the *global* name (block j of stage s is global
 * block s * layersPerStage + j), so the split model starts from exactly the unsplit model's
 * weights, whatever the number of stages.
 */
import type { ResolvedConfig } from './config.js';
import { numStages } from './config.js';
import { hashSeed, normalArray } from './rng.js';

export interface ParamSpec {
  /** Stage-local name (what getWeights/setWeights use). */
  name: string;
  /** Name in the unsplit model (used for seeding and for comparing against it). */
  globalName: string;
  shape: number[];
  init: 'normal' | 'ones';
}

export function blockParamSpecs(c: ResolvedConfig, local: number, global: number): ParamSpec[] {
  const d = c.dModel;
  const h = c.ffHidden;
  const p = (suffix: string, shape: number[], init: ParamSpec['init'] = 'normal'): ParamSpec => ({
    name: `blocks.${local}.${suffix}`,
    globalName: `blocks.${global}.${suffix}`,
    shape,
    init,
  });
  return [
    p('attn_norm.weight', [d], 'ones'),
    p('attn.wq', [d, d]),
    p('attn.wk', [d, d]),
    p('attn.wv', [d, d]),
    p('attn.wo', [d, d]),
    p('mlp_norm.weight', [d], 'ones'),
    p('mlp.w_gate', [d, h]),
    p('mlp.w_up', [d, h]),
    p('mlp.w_down', [h, d]),
  ];
}

export function embedParamSpecs(c: ResolvedConfig): ParamSpec[] {
  return [{ name: 'embed.weight', globalName: 'embed.weight', shape: [c.vocabSize, c.dModel], init: 'normal' }];
}

export function headParamSpecs(c: ResolvedConfig): ParamSpec[] {
  return [
    { name: 'head.norm.weight', globalName: 'head.norm.weight', shape: [c.dModel], init: 'ones' },
    { name: 'head.lm_head', globalName: 'head.lm_head', shape: [c.dModel, c.vocabSize], init: 'normal' },
  ];
}

/** Every parameter of stage `stage`, in a stable order: embedding, blocks, head. */
export function stageParamSpecs(c: ResolvedConfig, stage: number): ParamSpec[] {
  const S = numStages(c);
  if (!Number.isInteger(stage) || stage < 0 || stage >= S) {
    throw new RangeError(`stage ${stage} out of range 0..${S - 1}`);
  }
  const specs: ParamSpec[] = [];
  if (stage === 0) specs.push(...embedParamSpecs(c));
  for (let j = 0; j < c.layersPerStage; j++) {
    specs.push(...blockParamSpecs(c, j, stage * c.layersPerStage + j));
  }
  if (stage === S - 1) specs.push(...headParamSpecs(c));
  return specs;
}

export function sizeOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The deterministic initial value of one parameter. */
export function initialValue(c: ResolvedConfig, spec: ParamSpec): Float32Array {
  const n = sizeOf(spec.shape);
  if (spec.init === 'ones') return new Float32Array(n).fill(1);
  return normalArray(n, c.initStd, hashSeed(c.seed, spec.globalName));
}

/** True for the parameters that belong to blocks (what CheckFree averages between stages). */
export function isBlockParam(name: string): boolean {
  return name.startsWith('blocks.');
}
