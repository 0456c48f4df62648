/**
 * How the replicas of a stage combine their work (`--dp`):
 *
 *   exact   every iteration the replicas' gradients are summed and every replica takes the same
 *           clip + Adam step (the swarm's behaviour since replicas exist; equals one big stage).
 *   diloco  every replica clips and steps on its own accumulated gradient every iteration (the
 *           inner optimizer: the stage's Adam, unchanged); every `every` iterations the group
 *           averages its pseudo-gradients (weights at the last sync minus weights now) and every
 *           replica applies the same outer Nesterov step to the synced weights
 *           (Douillard et al. 2023, DiLoCo; docs/research.md "Low-communication data parallelism").
 */
import { ConfigError } from '../model/config.js';
import { checkStreaming, fragmentDueAfter, streamingOf, type StreamingMerge } from './streaming.js';
import { WIRE_ENCODINGS, isWireEncoding, type WireEncoding } from '../protocol/wire-encoding.js';

export const DP_MODES = ['exact', 'diloco'] as const;
export type DpMode = (typeof DP_MODES)[number];

export interface DpSettings {
  mode: DpMode;
  /** diloco: iterations between syncs (H). */
  every: number;
  /** diloco: outer learning rate (DiLoCo: 0.7). */
  outerLr: number;
  /** diloco: outer Nesterov momentum (DiLoCo: 0.9). */
  outerMomentum: number;
  /** diloco: how pseudo-gradients travel, up and down (int8 blockwise by default, as frames do). */
  wire: WireEncoding;
  /** diloco: F, contiguous fragments of a stage's parameters synced at staggered iterations (Streaming DiLoCo; 1 = all at once). */
  fragments: number;
  /** diloco: tau, iterations a fragment's sync overlaps with training before its outer update is applied (0 = training waits). */
  overlap: number;
  /** diloco: how an overlapped outer update meets the local weights: 'mix' (0.5 / 0.5, Streaming DiLoCo's) or 'delta' (keeps the local progress). */
  merge: StreamingMerge;
  /** diloco: W, the first W iterations sync after every iteration (H = 1), the rest every H (plain DiLoCo only; absent = 0). */
  warmup?: number;
}

export const DEFAULT_DP: DpSettings = { mode: 'exact', every: 20, outerLr: 0.7, outerMomentum: 0.9, wire: 'int8', fragments: 1, overlap: 0, merge: 'mix' };

export function checkDpSettings(d: DpSettings): void {
  if (!(DP_MODES as readonly string[]).includes(d.mode)) throw new ConfigError(`unknown --dp mode "${d.mode}"; choose one of: ${DP_MODES.join(', ')}`);
  if (!Number.isInteger(d.every) || d.every < 1) throw new ConfigError(`--dp-every must be an integer >= 1, got ${d.every}`);
  if (!(d.outerLr > 0 && d.outerLr <= 10)) throw new ConfigError(`--outer-lr must be in (0, 10], got ${d.outerLr}`);
  if (!(d.outerMomentum >= 0 && d.outerMomentum < 1)) throw new ConfigError(`--outer-momentum must be in [0, 1), got ${d.outerMomentum}`);
  if (!isWireEncoding(d.wire)) throw new ConfigError(`unknown --dp-wire "${d.wire}"; choose one of: ${WIRE_ENCODINGS.join(', ')}`);
  checkStreaming(streamingOf(d));
}

/** Whether a diloco group starts a sync (of some fragment, streaming.ts) after iteration `iteration` (counted from 0). */
export function syncsAfter(d: Pick<DpSettings, 'mode' | 'every'> & { fragments?: number; warmup?: number }, iteration: number): boolean {
  return d.mode === 'diloco' && fragmentDueAfter(streamingOf(d), iteration) !== null;
}
