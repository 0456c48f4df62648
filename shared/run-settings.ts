/**
 * Run settings shared by the local trainer, the coordinator and the experiments: the model
 * preset and the training schedule. Defaults are the tiny preset, sized for CPU tests.
 */
import { configForStages, getPreset, ConfigError, type ResolvedConfig } from './model/config.js';
import { WIRE_ENCODINGS, isWireEncoding, type WireEncoding } from './protocol/wire-encoding.js';
import { DEFAULT_DP, checkDpSettings, type DpSettings } from './dp/dp-settings.js';

export const RECOVERY_STRATEGIES = ['checkfree+', 'checkfree', 'checkpoint', 'cpsr', 'stage-restore', 'redundant', 'none'] as const;
export type RecoveryStrategy = (typeof RECOVERY_STRATEGIES)[number];

export interface RunSettings {
  preset: string;
  stages: number;
  microbatches: number;
  /** Sequences per microbatch. */
  batch: number;
  /** Overrides the preset's sequence length when set. */
  seqLen?: number;
  lr: number;
  seed: number;
  recovery: RecoveryStrategy;
  /** How activations and their gradients travel between stages (docs/wire.md); absent = DEFAULT_WIRE. */
  wire?: WireEncoding;
  /** The tokenizer's vocabulary (absent: the preset's, 256 = byte). */
  vocabSize?: number;
  /** SHA-256 of the corpus and of the tokenizer the run trains on (trainer/corpus-file.ts); a resume must match them. */
  corpusHash?: string;
  tokenizerHash?: string;
  /** The tokenizer as given (`byte`, `bpe:4096`, a tokenizer.json path), for messages. */
  tokenizer?: string;
  /** How a stage's replicas combine their work (`--dp`, docs/data-parallel.md); absent = exact. */
  dp?: DpSettings;
}

/**
 * Why a stored run cannot be resumed on this data, or null when it can: a different corpus or
 * tokenizer would silently train the run's weights on other tokens. Runs stored before the hashes
 * existed (no hash) trained on the byte tokenizer; only the tokenizer can be checked for them.
 */
export function resumeDataMismatch(stored: RunSettings, current: RunSettings): string | null {
  const storedVocab = stored.vocabSize ?? 256;
  const vocab = current.vocabSize ?? 256;
  if (stored.tokenizerHash !== undefined && current.tokenizerHash !== undefined && stored.tokenizerHash !== current.tokenizerHash) {
    return `the run was trained with tokenizer ${stored.tokenizer ?? '?'} (${stored.tokenizerHash.slice(0, 12)}), not ${current.tokenizer ?? '?'} (${current.tokenizerHash.slice(0, 12)})`;
  }
  if (storedVocab !== vocab) return `the run's vocabulary is ${storedVocab} tokens, this tokenizer's ${vocab}`;
  if (stored.corpusHash !== undefined && current.corpusHash !== undefined && stored.corpusHash !== current.corpusHash) {
    return `the run was trained on another corpus (SHA-256 ${stored.corpusHash.slice(0, 12)}, this --data is ${current.corpusHash.slice(0, 12)})`;
  }
  return null;
}

/** The default `--wire` (docs/wire.md gives the study behind it). */
export const DEFAULT_WIRE: WireEncoding = 'int8';

export const DEFAULT_SETTINGS: RunSettings = {
  preset: 'tiny',
  stages: 4,
  microbatches: 4,
  batch: 4,
  lr: 3e-3,
  seed: 1234,
  recovery: 'checkfree+',
  wire: DEFAULT_WIRE,
};

/** The wire encoding of a run. */
export function wireOf(s: Pick<RunSettings, 'wire'>): WireEncoding {
  return s.wire ?? DEFAULT_WIRE;
}

/** The data-parallel settings of a run (absent = DEFAULT_DP: exact). */
export function dpOf(s: Pick<RunSettings, 'dp'>): DpSettings {
  return s.dp ?? DEFAULT_DP;
}

/**
 * Whether two run settings describe the same run (what a resume requires): a stored run is only
 * resumed with the same model, schedule, wire and data-parallel mode (a diloco run resumed as
 * exact, or with another H, would mix two algorithms in one history).
 */
export function sameRunSettings(a: RunSettings, b: RunSettings): boolean {
  const keys: (keyof RunSettings)[] = ['preset', 'stages', 'microbatches', 'batch', 'seqLen', 'lr', 'seed', 'recovery'];
  const da = dpOf(a);
  const db = dpOf(b);
  const sameDp = da.mode === db.mode && (da.mode === 'exact' || (da.every === db.every && da.outerLr === db.outerLr && da.outerMomentum === db.outerMomentum && da.wire === db.wire && (da.fragments ?? 1) === (db.fragments ?? 1) && (da.overlap ?? 0) === (db.overlap ?? 0) && (da.merge ?? 'mix') === (db.merge ?? 'mix') && (da.warmup ?? 0) === (db.warmup ?? 0)));
  return keys.every((k) => (a[k] ?? null) === (b[k] ?? null)) && wireOf(a) === wireOf(b) && sameDp;
}

/** The model config these settings describe (throws ConfigError on a bad combination). */
export function modelConfigOf(s: Omit<RunSettings, 'dp'>): ResolvedConfig {
  const p = getPreset(s.preset);
  return configForStages({ ...p, seed: s.seed, seqLen: s.seqLen ?? p.seqLen, vocabSize: s.vocabSize ?? p.vocabSize }, s.stages);
}

/**
 * Which strategies run the edge stages' microbatches in CheckFree+'s swapped order (so that a
 * lost first or last stage can be rebuilt from its partner). One entry per strategy: a new
 * strategy must say.
 */
const SWAPS_EDGE_MICROBATCHES: Record<RecoveryStrategy, boolean> = {
  'checkfree+': true,
  checkfree: false,
  checkpoint: false,
  cpsr: false,
  'stage-restore': false,
  redundant: false,
  none: false,
};

/** Whether microbatch paths use CheckFree+'s swapped order. */
export function usesSwap(s: Pick<RunSettings, 'recovery'>): boolean {
  return SWAPS_EDGE_MICROBATCHES[s.recovery];
}

export function checkSettings(s: RunSettings): void {
  const int = (n: string, v: number, min = 1) => {
    if (!Number.isInteger(v) || v < min) throw new ConfigError(`${n} must be an integer >= ${min}, got ${v}`);
  };
  int('microbatches', s.microbatches);
  int('batch', s.batch);
  if (!(s.lr > 0 && s.lr < 1)) throw new ConfigError(`lr must be in (0, 1), got ${s.lr}`);
  if (!RECOVERY_STRATEGIES.includes(s.recovery)) {
    throw new ConfigError(`unknown recovery strategy "${s.recovery}"; choose one of: ${RECOVERY_STRATEGIES.join(', ')}`);
  }
  if (s.wire !== undefined && !isWireEncoding(s.wire)) throw new ConfigError(`unknown wire encoding "${s.wire}"; choose one of: ${WIRE_ENCODINGS.join(', ')}`);
  if (s.dp !== undefined) checkDpSettings(s.dp);
  modelConfigOf(s);
}
