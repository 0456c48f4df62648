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
 */
import type { OuterHyper } from './outer-nesterov.js';
import { outerNesterovStep, pseudoGradient } from './outer-nesterov.js';
import { syncChunks, SYNC_CHUNK_VALUES, type ChunkRange } from './sync-chunks.js';
import type { WireEncoding } from '../protocol/wire-encoding.js';

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
    readonly hyper: OuterHyper & { wire: WireEncoding },
    readonly chunkValues: number = SYNC_CHUNK_VALUES,
  ) {
    if (initial.synced.length !== initial.momentum.length) throw new RangeError(`diloco state of ${initial.synced.length} weights and ${initial.momentum.length} momentum values`);
    this.s = { synced: Float32Array.from(initial.synced), momentum: Float32Array.from(initial.momentum), syncs: initial.syncs };
  }

  /** A fresh replica: synced = the stage's weights now, zero momentum. */
  static start(stage: number, weights: Float32Array, hyper: OuterHyper & { wire: WireEncoding }, chunkValues?: number): DilocoReplica {
    return new DilocoReplica(stage, { synced: weights, momentum: new Float32Array(weights.length), syncs: 0 }, hyper, chunkValues);
  }

  /** Syncs completed so far. */
  get syncs(): number {
    return this.s.syncs;
  }

  get length(): number {
    return this.s.synced.length;
  }

  chunks(): ChunkRange[] {
    return syncChunks(this.length, this.chunkValues);
  }

  /** A copy of the state a joining sibling needs. */
  state(): DilocoState {
    return { synced: Float32Array.from(this.s.synced), momentum: Float32Array.from(this.s.momentum), syncs: this.s.syncs };
  }

  /** This replica's pseudo-gradient (synced - current), unencoded. */
  pseudoGradient(current: Float32Array): Float32Array {
    return pseudoGradient(this.s.synced, current);
  }

  /** The outer step with the decoded mean pseudo-gradient; returns the new synced weights (a copy). */
  applyMean(mean: Float32Array): Float32Array {
    for (let i = 0; i < mean.length; i++) if (!Number.isFinite(mean[i]!)) throw new RangeError(`averaged pseudo-gradient has a non-finite value at ${i}`);
    outerNesterovStep(this.s.synced, this.s.momentum, mean, this.hyper);
    this.s.syncs += 1;
    return Float32Array.from(this.s.synced);
  }
}
