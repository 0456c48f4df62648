/**
 * What one replica of a stage holds in `--dp diloco`, besides its stage (weights and inner Adam):
 * the flat weights at the last sync and the outer Nesterov momentum, both the same in every
 * replica of the group (every replica applies the same outer step to the same bytes). A volunteer
 * tab keeps one (shared/volunteer/agent.ts), the local trainer one per replica.
 *
 * A sync is one DilocoSyncSession (diloco-sync-session.ts): the replica's pseudo-gradient goes up
 * in chunks, the averaged chunks come back, and `applyMean` takes the outer step and returns the
 * new weights to load into its stage (its inner Adam state is kept, as in DiLoCo). A replica that joins
 * receives `state()` from a sibling (diloco-state.ts encodes it) along with the stage's weights and
 * Adam state.
 *
 * Streaming DiLoCo (streaming.ts, `hyper.streaming`): a sync covers one fragment of the flat
 * vector; the pseudo-gradient and the outer step then read and write only that fragment's slice
 * of `synced` and `momentum` (each fragment's own anchor and momentum). Without `streaming` a
 * sync covers the whole vector (F = 1).
 */
import type { OuterHyper } from './outer-nesterov.js';
import { outerNesterovStep, pseudoGradient } from './outer-nesterov.js';
import { syncChunks, SYNC_CHUNK_VALUES, type ChunkRange } from './sync-chunks.js';
import { fragmentDueAfter, fragmentRanges, type FragmentRange, type StreamingPlan } from './streaming.js';
import type { WireEncoding } from '../protocol/wire-encoding.js';

/** What every replica of a group shares besides its state: the outer step, the wire and the fragment plan. */
export type DilocoHyper = OuterHyper & { wire: WireEncoding; streaming?: StreamingPlan };

export interface DilocoState {
  /** Weights at the last sync (flat, stage parameter order). */
  synced: Float32Array;
  /** Outer Nesterov momentum (flat). */
  momentum: Float32Array;
  /** Syncs completed so far. */
  syncs: number;
}

export class DilocoReplica {
  private s: DilocoState;

  constructor(
    readonly stage: number,
    initial: DilocoState,
    readonly hyper: DilocoHyper,
    readonly chunkValues: number = SYNC_CHUNK_VALUES,
  ) {
    if (initial.synced.length !== initial.momentum.length) throw new RangeError(`diloco state of ${initial.synced.length} weights and ${initial.momentum.length} momentum values`);
    this.s = { synced: Float32Array.from(initial.synced), momentum: Float32Array.from(initial.momentum), syncs: initial.syncs };
  }

  /** A fresh replica: synced = the stage's weights now, zero momentum. */
  static start(stage: number, weights: Float32Array, hyper: DilocoHyper, chunkValues?: number): DilocoReplica {
    return new DilocoReplica(stage, { synced: weights, momentum: new Float32Array(weights.length), syncs: 0 }, hyper, chunkValues);
  }

  /** Syncs completed so far. */
  get syncs(): number {
    return this.s.syncs;
  }

  get length(): number {
    return this.s.synced.length;
  }

  /** Iterations a sync overlaps with training (tau; 0 without streaming). */
  get overlap(): number {
    return this.hyper.streaming?.overlap ?? 0;
  }

  /** The fragment synced after `iteration` (the whole vector with one fragment, whenever asked; RangeError when none is due). */
  fragmentAfter(iteration: number): FragmentRange {
    const plan = this.hyper.streaming;
    if (!plan || plan.fragments === 1) return { index: 0, start: 0, count: this.length };
    const f = fragmentDueAfter(plan, iteration);
    if (f === null) throw new RangeError(`no fragment syncs after iteration ${iteration} (H ${plan.every}, F ${plan.fragments})`);
    return fragmentRanges(this.length, plan.fragments)[f]!;
  }

  /** The chunks of a fragment's sync (ranges relative to the fragment's start; the whole vector by default). */
  chunks(fragment: FragmentRange = { index: 0, start: 0, count: this.length }): ChunkRange[] {
    return syncChunks(fragment.count, this.chunkValues);
  }

  /** A copy of the state a joining sibling needs. */
  state(): DilocoState {
    return { synced: Float32Array.from(this.s.synced), momentum: Float32Array.from(this.s.momentum), syncs: this.s.syncs };
  }

  /** This replica's pseudo-gradient (synced - current) over `fragment` (default: all), unencoded; `current` is the whole flat vector. */
  pseudoGradient(current: Float32Array, fragment?: FragmentRange): Float32Array {
    if (current.length !== this.length) throw new RangeError(`pseudo-gradient of ${current.length} weights for a stage of ${this.length}`);
    if (!fragment) return pseudoGradient(this.s.synced, current);
    return pseudoGradient(this.slice(this.s.synced, fragment), this.slice(current, fragment));
  }

  /** The outer step of `fragment` (default: all) with its decoded mean pseudo-gradient; returns the fragment's new synced weights (a copy). */
  applyMean(mean: Float32Array, fragment?: FragmentRange): Float32Array {
    for (let i = 0; i < mean.length; i++) if (!Number.isFinite(mean[i]!)) throw new RangeError(`averaged pseudo-gradient has a non-finite value at ${i}`);
    const synced = fragment ? this.slice(this.s.synced, fragment) : this.s.synced;
    outerNesterovStep(synced, fragment ? this.slice(this.s.momentum, fragment) : this.s.momentum, mean, this.hyper);
    this.s.syncs += 1;
    return Float32Array.from(synced);
  }

  private slice(v: Float32Array, f: FragmentRange): Float32Array {
    if (f.start < 0 || f.count < 1 || f.start + f.count > v.length) throw new RangeError(`fragment [${f.start}, +${f.count}) of ${v.length} values`);
    return v.subarray(f.start, f.start + f.count);
  }
}
