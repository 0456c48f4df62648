/**
 * Model configuration: one plain typed object, as in nanoGPT.
 *
 * The model is a LLaMA-style decoder-only transformer split into pipeline stages of
 * `layersPerStage` consecutive blocks. Stage 0 also owns the token embedding, the last stage
 * owns the final RMSNorm, the LM head and the loss.
 */
export interface ModelConfig {
  /** Tokenizer vocabulary size (256 for the byte-level tokenizer). */
  vocabSize: number;
  /** Residual stream width. */
  dModel: number;
  /** Attention heads; must divide dModel, and dModel / nHeads must be even (rotary pairs). */
  nHeads: number;
  /** Transformer blocks in the whole model. */
  nLayers: number;
  /** Blocks per pipeline stage; must divide nLayers. nStages = nLayers / layersPerStage. */
  layersPerStage: number;
  /** Context length in tokens. */
  seqLen: number;
  /** Seed for deterministic initialisation: every tab builds identical weights for its stage. */
  seed: number;
  /** SwiGLU hidden width; default 4 * dModel (the reference code's choice). */
  ffHidden?: number;
  /** RMSNorm epsilon (reference: 1e-6). */
  normEps?: number;
  /** Rotary embedding base (reference: 10000). */
  ropeTheta?: number;
  /** Std of the normal init (reference: 0.02). */
  initStd?: number;
}

/** A config with every optional field filled in. */
export type ResolvedConfig = Required<ModelConfig>;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new ConfigError(`${name} must be a positive integer, got ${String(v)}`);
  }
  return v;
}

/** Fills defaults and checks every constraint, throwing a ConfigError with a readable message. */
export function resolveConfig(c: ModelConfig): ResolvedConfig {
  const vocabSize = positiveInt('vocabSize', c.vocabSize);
  const dModel = positiveInt('dModel', c.dModel);
  const nHeads = positiveInt('nHeads', c.nHeads);
  const nLayers = positiveInt('nLayers', c.nLayers);
  const layersPerStage = positiveInt('layersPerStage', c.layersPerStage);
  const seqLen = positiveInt('seqLen', c.seqLen);
  if (!Number.isInteger(c.seed)) throw new ConfigError(`seed must be an integer, got ${String(c.seed)}`);
  if (dModel % nHeads !== 0) {
    throw new ConfigError(`nHeads (${nHeads}) must divide dModel (${dModel})`);
  }
  if ((dModel / nHeads) % 2 !== 0) {
    throw new ConfigError(`head size dModel/nHeads = ${dModel / nHeads} must be even for rotary embeddings`);
  }
  if (layersPerStage > nLayers) {
    throw new ConfigError(
      `more stages than layers: layersPerStage ${layersPerStage} > nLayers ${nLayers} (each stage needs at least one block)`,
    );
  }
  if (nLayers % layersPerStage !== 0) {
    throw new ConfigError(`layersPerStage (${layersPerStage}) must divide nLayers (${nLayers})`);
  }
  const ffHidden = c.ffHidden === undefined ? 4 * dModel : positiveInt('ffHidden', c.ffHidden);
  const normEps = c.normEps ?? 1e-6;
  const ropeTheta = c.ropeTheta ?? 10000;
  const initStd = c.initStd ?? 0.02;
  if (!(normEps > 0) || !(ropeTheta > 1) || !(initStd > 0)) {
    throw new ConfigError('normEps and initStd must be > 0 and ropeTheta > 1');
  }
  return { vocabSize, dModel, nHeads, nLayers, layersPerStage, seqLen, seed: c.seed, ffHidden, normEps, ropeTheta, initStd };
}

export function numStages(c: ModelConfig): number {
  return c.nLayers / c.layersPerStage;
}

/**
 * Builds a config from a stage count instead of layers-per-stage (what the CLI flags say).
 * Throws a ConfigError if the stages do not split the layers evenly.
 */
export function configForStages(base: Omit<ModelConfig, 'layersPerStage'>, stages: number): ResolvedConfig {
  positiveInt('stages', stages);
  if (stages > base.nLayers) {
    throw new ConfigError(`more stages (${stages}) than layers (${base.nLayers}): each stage needs at least one block`);
  }
  if (base.nLayers % stages !== 0) {
    throw new ConfigError(`stages (${stages}) must divide the layer count (${base.nLayers})`);
  }
  return resolveConfig({ ...base, layersPerStage: base.nLayers / stages });
}

/**
 * Named presets. tiny: tests and CPU/SwiftShader; small: laptops; base: real GPUs. paper-124m and
 * paper-500m: the CheckFree paper's LLaMA models (d 512, 8 heads, 4 stages x 3 layers, sequence
 * 512; d 1024, 16 heads, 12 stages x 2 layers, sequence 1024). vocabSize here is the byte
 * tokenizer's; a run takes it from its tokenizer (RunSettings.vocabSize).
 */
export const PRESETS = {
  tiny: { vocabSize: 256, dModel: 64, nHeads: 4, nLayers: 4, seqLen: 64, seed: 1234 },
  small: { vocabSize: 256, dModel: 128, nHeads: 4, nLayers: 8, seqLen: 128, seed: 1234 },
  base: { vocabSize: 256, dModel: 512, nHeads: 8, nLayers: 8, seqLen: 256, seed: 1234 },
  'paper-124m': { vocabSize: 256, dModel: 512, nHeads: 8, nLayers: 12, seqLen: 512, seed: 1234 },
  'paper-500m': { vocabSize: 256, dModel: 1024, nHeads: 16, nLayers: 24, seqLen: 1024, seed: 1234 },
} satisfies Record<string, Omit<ModelConfig, 'layersPerStage'>>;

/** The stage count each preset was laid out for (the paper's); others default to the run's --stages. */
export const PRESET_STAGES: Partial<Record<keyof typeof PRESETS, number>> = { 'paper-124m': 4, 'paper-500m': 12 };

export type PresetName = keyof typeof PRESETS;

export function presetNames(): PresetName[] {
  return Object.keys(PRESETS) as PresetName[];
}

export function getPreset(name: string): Omit<ModelConfig, 'layersPerStage'> {
  if (!(name in PRESETS)) {
    throw new ConfigError(`unknown preset "${name}"; choose one of: ${presetNames().join(', ')}`);
  }
  return { ...PRESETS[name as PresetName] };
}
