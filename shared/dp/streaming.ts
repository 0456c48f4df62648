/**
 * Streaming DiLoCo (Douillard et al. 2025, "Streaming DiLoCo with overlapping communication",
 * arXiv 2501.18512; docs/research.md): a stage's flat parameters are split into F contiguous
 * fragments that sync at staggered iterations, so each sync moves 1/F of the bytes, and with an
 * overlap tau >= 1 the replicas keep training while a fragment's mean is collected; the outer
 * update computed from the weights after iteration t is applied after iteration t + tau, merged
 * with the replica's local weights of that fragment:
 *
 *   fragment f syncs after iteration t  iff  (t + 1) mod H == floor(f H / F)
 *   tau = 0:  fragment <- global_new                        (DiLoCo's replace; F = 1 is plain DiLoCo)
 *   tau >= 1, merge 'mix' (default):  fragment <- alpha local + (1 - alpha) global_new,  alpha = STREAMING_MIX = 0.5 (the paper's)
 *   tau >= 1, merge 'delta':          fragment <- global_new + (local - snapshot)   (the outer update
 *             replaces the weights it was computed from; the tau steps of local progress since are kept)
 *
 * Every fragment keeps its own slice of the outer momentum and of the synced weights (the
 * replica's `synced` and `momentum` vectors, sliced). F <= H keeps the offsets distinct (one
 * fragment per sync point) and tau <= floor(H / F) keeps at most one sync per stage in flight: the
 * previous one is applied before the next starts. Pure functions over numbers; no state here.
 */
import { ConfigError } from '../model/config.js';
import { INT8_BLOCK_SIZE } from '../protocol/quantize.js';

/** The knobs of the schedule (a subset of DpSettings). */
export interface StreamingPlan {
  /** H: iterations between two syncs of the same fragment. */
  every: number;
  /** F: fragments per stage (1 = DiLoCo). */
  fragments: number;
  /** tau: iterations a fragment's sync overlaps with training (0 = training waits for it). */
  overlap: number;
  /** How an overlapped outer update meets the local weights (default 'mix'). */
  merge?: StreamingMerge;
  /** W: the first W iterations (0 .. W-1) each end with a sync of the whole stage (H = 1), then every H (plain DiLoCo only; default 0). */
  warmup?: number;
}

export const STREAMING_MERGES = ['mix', 'delta'] as const;
export type StreamingMerge = (typeof STREAMING_MERGES)[number];

/** Streaming DiLoCo's mixing factor alpha of the local weights at an overlapped apply (the paper's 0.5). */
export const STREAMING_MIX = 0.5;

/** One fragment: values [start, start + count) of the stage's flat vector. */
export interface FragmentRange {
  index: number;
  start: number;
  count: number;
}

/** The plan of stored settings that predate fragments (missing fields: F = 1, tau = 0). */
export function streamingOf(d: { every: number; fragments?: number; overlap?: number; merge?: StreamingMerge; warmup?: number }): StreamingPlan {
  return { every: d.every, fragments: d.fragments ?? 1, overlap: d.overlap ?? 0, merge: d.merge ?? 'mix', warmup: d.warmup ?? 0 };
}

/** Whether the plan is plain DiLoCo (one fragment, no overlap). */
export function isPlainDiloco(p: StreamingPlan): boolean {
  return p.fragments === 1 && p.overlap === 0;
}

export function checkStreaming(p: StreamingPlan): void {
  if (!Number.isInteger(p.fragments) || p.fragments < 1) throw new ConfigError(`--dp-fragments must be an integer >= 1, got ${p.fragments}`);
  if (p.fragments > p.every) throw new ConfigError(`--dp-fragments ${p.fragments} exceeds --dp-every ${p.every}: every fragment needs its own sync iteration`);
  if (!Number.isInteger(p.overlap) || p.overlap < 0) throw new ConfigError(`--dp-overlap must be an integer >= 0, got ${p.overlap}`);
  if (p.merge !== undefined && !(STREAMING_MERGES as readonly string[]).includes(p.merge)) throw new ConfigError(`unknown --dp-merge "${String(p.merge)}"; choose one of: ${STREAMING_MERGES.join(', ')}`);
  const w = p.warmup ?? 0;
  if (!Number.isInteger(w) || w < 0) throw new ConfigError(`--dp-warmup must be an integer >= 0, got ${w}`);
  if (w > 0 && !(p.fragments === 1 && p.overlap === 0)) throw new ConfigError('--dp-warmup needs plain DiLoCo (--dp-fragments 1 --dp-overlap 0)');
  const gap = Math.floor(p.every / p.fragments);
  if (p.overlap > gap) throw new ConfigError(`--dp-overlap ${p.overlap} exceeds floor(--dp-every / --dp-fragments) = ${gap}: a fragment's sync must be applied before the next one starts`);
}

/** The iteration offset of fragment f: it syncs after iterations t with (t + 1) mod H equal to it. */
export function fragmentOffset(p: Pick<StreamingPlan, 'every' | 'fragments'>, f: number): number {
  return Math.floor((f * p.every) / p.fragments);
}

/** The fragment whose sync starts after iteration `iteration` (counted from 0), or null; during the warm-up (iteration < W) the whole stage after every iteration. */
export function fragmentDueAfter(p: Pick<StreamingPlan, 'every' | 'fragments' | 'warmup'>, iteration: number): number | null {
  if (inWarmup(p, iteration)) return 0;
  const phase = (iteration + 1) % p.every;
  for (let f = 0; f < p.fragments; f++) if (fragmentOffset(p, f) === phase) return f;
  return null;
}

/** Whether the sync after `iteration` is a warm-up sync (one iteration of progress, not up to H: screens keep their history apart). */
export function inWarmup(p: Pick<StreamingPlan, 'warmup'>, iteration: number): boolean {
  return iteration < (p.warmup ?? 0);
}

/** The iteration whose sync is applied after iteration `iteration` (started tau iterations before), or null. */
export function syncAppliedAfter(p: StreamingPlan, iteration: number): number | null {
  const started = iteration - p.overlap;
  return started >= 0 && fragmentDueAfter(p, started) !== null ? started : null;
}

/**
 * The F contiguous fragments of a flat vector of `total` values: fragment f starts at
 * floor(f total / F) rounded down to a whole int8 block (so a fragment's blocks are the blocks of
 * the whole vector); every fragment holds at least one value.
 */
export function fragmentRanges(total: number, fragments: number): FragmentRange[] {
  if (!Number.isInteger(total) || total < 1) throw new RangeError(`fragments of ${total} values`);
  const starts = Array.from({ length: fragments }, (_, f) => Math.floor(Math.floor((f * total) / fragments) / INT8_BLOCK_SIZE) * INT8_BLOCK_SIZE);
  const out = starts.map((start, f) => ({ index: f, start, count: (f + 1 < fragments ? starts[f + 1]! : total) - start }));
  const empty = out.find((r) => r.count < 1);
  if (empty) throw new RangeError(`${total} values cannot be split into ${fragments} fragments of whole ${INT8_BLOCK_SIZE}-value blocks`);
  return out;
}

/**
 * Writes the outer update of fragment `r` into `weights` (the replica's local weights now, flat):
 * replaced by `globalNew` when tau = 0; else 'mix': alpha local + (1 - alpha) global, or 'delta':
 * global + (local - snapshot), with `snapshot` the flat weights the pseudo-gradient was read from.
 * Computed in double and stored as float32, index by index (the same bytes everywhere).
 */
export function mergeFragment(weights: Float32Array, r: FragmentRange, globalNew: Float32Array, overlap: number, how: { merge?: StreamingMerge; snapshot?: Float32Array; alpha?: number } = {}): void {
  if (globalNew.length !== r.count || r.start + r.count > weights.length) throw new RangeError(`fragment [${r.start}, +${r.count}) with ${globalNew.length} new values over ${weights.length} weights`);
  if (overlap === 0) {
    weights.set(globalNew, r.start);
    return;
  }
  if (how.merge === 'delta') {
    const snap = how.snapshot;
    if (!snap || snap.length !== weights.length) throw new RangeError('a delta merge needs the snapshot the pseudo-gradient was read from');
    for (let i = 0; i < r.count; i++) weights[r.start + i] = globalNew[i]! + (weights[r.start + i]! - snap[r.start + i]!);
    return;
  }
  const alpha = how.alpha ?? STREAMING_MIX;
  for (let i = 0; i < r.count; i++) weights[r.start + i] = alpha * weights[r.start + i]! + (1 - alpha) * globalNew[i]!;
}

/**
 * Whether a tab may join (or move into) a diloco group now, `done` iterations completed. Plain
 * DiLoCo: right after a sync (every H iterations), when a sibling's weights are its synced ones.
 * Streaming: whenever no sync is under way (a joiner copies a sibling's weights, Adam state and
 * outer state, all consistent then, and would miss the apply of a sync started before it
 * joined); with tau = floor(H / F) a sync is always under way after the first, so joins wait.
 */
export function dilocoJoinsAllowed(p: StreamingPlan, done: number, inFlight: boolean): boolean {
  if (isPlainDiloco(p)) return done % p.every === 0 || done <= (p.warmup ?? 0);
  return !inFlight;
}

/**
 * What an operator should know about a plan before the run starts, or null: with tau =
 * floor(H / F) > 0 a fragment's sync is always under way (each starts as the previous one is
 * applied), so dilocoJoinsAllowed never opens and no tab can join a group after the first sync.
 */
export function streamingJoinWarning(p: StreamingPlan): string | null {
  if (isPlainDiloco(p) || p.overlap === 0 || p.overlap < Math.floor(p.every / p.fragments)) return null;
  return `--dp-overlap ${p.overlap} = floor(--dp-every ${p.every} / --dp-fragments ${p.fragments}): a sync is always under way, so volunteers that arrive after the first sync cannot join a group (they wait as spares); where volunteers come and go use --dp-overlap <= ${Math.floor(p.every / p.fragments) - 1} or fewer fragments`;
}

/** Syncs applied once `done` iterations completed (those started after t with t + tau < done). */
export function syncsAppliedBy(p: StreamingPlan, done: number): number {
  let n = 0;
  for (let t = 0; t + p.overlap < done; t++) if (fragmentDueAfter(p, t) !== null) n++;
  return n;
}
