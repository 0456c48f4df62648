/**
 * Run settings shared by the local trainer, the coordinator and the experiments: the model
 * preset and the training schedule. Defaults are the tiny preset, sized for CPU tests.
 */
import { configForStages, getPreset, ConfigError, type ResolvedConfig } from './model/config.js';
import { WIRE_ENCODINGS, isWireEncoding, type WireEncoding } from './protocol/wire-encoding.js';
import { DEFAULT_DP, checkDpSettings, type DpSettings } from './dp/dp-settings.js';

export const RECOVERY_STRATEGIES = ['checkfree+', 'checkfree', 'checkpoint', 'redundant', 'none'] as const;
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
  /** How a stage's replicas combine their work (`--dp`, docs/data-parallel.md); absent = exact. */
  dp?: DpSettings;
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
  const sameDp = da.mode === db.mode && (da.mode === 'exact' || (da.every === db.every && da.outerLr === db.outerLr && da.outerMomentum === db.outerMomentum && da.wire === db.wire));
  return keys.every((k) => (a[k] ?? null) === (b[k] ?? null)) && wireOf(a) === wireOf(b) && sameDp;
}

/** The model config these settings describe (throws ConfigError on a bad combination). */
export function modelConfigOf(s: Omit<RunSettings, 'dp'>): ResolvedConfig {
  const p = getPreset(s.preset);
  return configForStages({ ...p, seed: s.seed, seqLen: s.seqLen ?? p.seqLen }, s.stages);
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
