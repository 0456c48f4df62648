/**
 * The exported model file: every stage's weights in one safetensors file under their *global*
 * names (shared/model/params.ts: block j of stage s is `blocks.{s * layersPerStage + j}.*`), with
 * the model config in the metadata, so it loads back into any number of local stages. See
 * docs/model-export.md.
 *
 * Assembling and reading need no tfjs (the coordinator uses them); stagesFromModelFile and
 * lastLogits build and run tfjs Stage objects (tests, scripts).
 */
import { configForStages, numStages, resolveConfig, type ModelConfig, type ResolvedConfig } from '../../shared/model/config.js';
import { stageParamSpecs, sizeOf } from '../../shared/model/params.js';
import type { NamedWeights } from '../../shared/model/stage.js';
import { decodeSafetensors, encodeSafetensors, SafetensorsError, type F32Tensor } from './safetensors.js';
import { ByteTokenizer, tokenizerMetadata, type Tokenizer } from '../../shared/data/tokenizer.js';

export const MODEL_FORMAT = 'volunteer-swarm-llama';

/** One file from per-stage weights (stage-local names, as get_weights returns them). */
export function assembleModelFile(config: ResolvedConfig, stageWeights: NamedWeights[], metadata: Record<string, string> = {}, tokenizer: Tokenizer = new ByteTokenizer()): Uint8Array {
  const S = numStages(config);
  if (stageWeights.length !== S) throw new SafetensorsError(`expected weights of ${S} stages, got ${stageWeights.length}`);
  const tensors: [string, F32Tensor][] = [];
  for (let s = 0; s < S; s++) {
    const w = stageWeights[s]!;
    for (const spec of stageParamSpecs(config, s)) {
      const data = w[spec.name];
      if (!data) throw new SafetensorsError(`stage ${s} did not send "${spec.name}"`);
      if (data.length !== sizeOf(spec.shape)) throw new SafetensorsError(`stage ${s} "${spec.name}": ${data.length} values, expected ${sizeOf(spec.shape)}`);
      tensors.push([spec.globalName, { shape: spec.shape, data }]);
    }
  }
  return encodeSafetensors(tensors, { format: MODEL_FORMAT, model_config: JSON.stringify(config), ...tokenizerMetadata(tokenizer), ...metadata });
}

export interface ModelFile {
  /** The config the model was trained with (its own stage split). */
  config: ResolvedConfig;
  metadata: Record<string, string>;
  tensors: Map<string, F32Tensor>;
}

export function readModelFile(bytes: Uint8Array | ArrayBuffer): ModelFile {
  const { tensors, metadata } = decodeSafetensors(bytes);
  if (metadata.format !== MODEL_FORMAT) throw new SafetensorsError(`not a swarm model file (format "${metadata.format ?? ''}")`);
  let config: ResolvedConfig;
  try {
    config = resolveConfig(JSON.parse(metadata.model_config ?? '') as ModelConfig);
  } catch (e) {
    throw new SafetensorsError(`bad model_config metadata: ${(e as Error).message}`);
  }
  return { config, metadata, tensors };
}

/**
 * Per-stage weights (stage-local names) for a split into `stages` stages (default: the split
 * it was trained with). Every tensor of the model must be present with its exact shape.
 */
export function stageWeightsOf(file: ModelFile, stages = numStages(file.config)): { config: ResolvedConfig; weights: NamedWeights[] } {
  const { layersPerStage: _l, ...base } = file.config;
  const config = configForStages(base, stages);
  const used = new Set<string>();
  const weights: NamedWeights[] = [];
  for (let s = 0; s < stages; s++) {
    const w: NamedWeights = {};
    for (const spec of stageParamSpecs(config, s)) {
      const t = file.tensors.get(spec.globalName);
      if (!t) throw new SafetensorsError(`model file lacks "${spec.globalName}"`);
      if (t.shape.join(',') !== spec.shape.join(',')) throw new SafetensorsError(`"${spec.globalName}" has shape [${t.shape}], expected [${spec.shape}]`);
      w[spec.name] = t.data;
      used.add(spec.globalName);
    }
    weights.push(w);
  }
  const extra = [...file.tensors.keys()].filter((n) => !used.has(n));
  if (extra.length) throw new SafetensorsError(`model file has unexpected tensors: ${extra.slice(0, 5).join(', ')}`);
  return { config, weights };
}

/** Local tfjs Stage objects holding the file's weights (needs a tfjs backend). */
export async function stagesFromModelFile(bytes: Uint8Array | ArrayBuffer, stages?: number) {
  const { Stage } = await import('../../shared/model/stage.js');
  const file = readModelFile(bytes);
  const { config, weights } = stageWeightsOf(file, stages);
  const built = weights.map((w, s) => {
    const st = new Stage(config, s);
    st.setWeights(w);
    return st;
  });
  return { config, metadata: file.metadata, stages: built };
}

/**
 * Next-token logits for one sequence through local stages on the plain path (or along `order`, a
 * partial model's block order), with the context padded exactly as the swarm sampler pads it
 * (coordinator/sampling.ts padContext).
 */
export async function lastLogits(stages: import('../../shared/model/stage.js').Stage[], context: Int32Array, order?: readonly number[]): Promise<Float32Array> {
  const tf = await import('../../shared/model/tf.js');
  const { forwardPath, hopsFromBlockOrder } = await import('../../shared/schedule/paths.js');
  const { padContext } = await import('./sampling.js');
  const { tokens, position } = padContext(context, stages[0]!.config.seqLen);
  const logits = tf.tidy(() => {
    let x: import('../../shared/model/tf.js').Tensor = tf.tensor2d(tokens, [1, tokens.length], 'int32');
    for (const hop of order ? hopsFromBlockOrder(order, stages.length) : forwardPath(0, stages.length, false)) x = stages[hop.stage]!.infer(x, hop.segment);
    return tf.reshape(tf.slice(x, [position, 0], [1, -1]), [-1]);
  });
  const data = (await logits.data()) as Float32Array;
  logits.dispose();
  return data;
}
