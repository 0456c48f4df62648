/**
 * One diloco sync as a volunteer tab lives it (the tab's side of the `dp_sync_*` messages,
 * sync-messages.ts), with no socket or tensor code, so the agent, the benchmark volunteer and the
 * tests drive the same steps:
 *
 *   1. the coordinator asks for uplink chunk k (`dp_sync_get`): the first request snapshots the
 *      pseudo-gradient (synced - the weights the tab read back once training of the interval
 *      ended), later ones answer from that snapshot, so every chunk belongs to one pseudo-gradient;
 *   2. it sends every averaged chunk (`dp_sync_put`): each is decoded and checked at once (a bad
 *      one is refused, the state is untouched);
 *   3. it says apply (`dp_sync_apply`) once every replica took every chunk: the outer step runs
 *      and the tab loads the returned weights into its stage (Stage.setWeights; its Adam state
 *      stays). A tab that misses a chunk or the apply is re-synced from a sibling, like a drifted
 *      replica (coordinator/replica-sync.ts), with the join state (diloco-state.ts) added.
 *
 * Streaming DiLoCo (streaming.ts): the session covers the fragment the replica's plan syncs after
 * its iteration (chunks are relative to that fragment); with an overlap tau >= 1 the apply comes
 * tau iterations later and merges into the weights the tab holds then (`apply(now)`).
 */
import type { DilocoReplica } from './diloco-replica.js';
import { chunkOf, decodeSyncChunk, encodeSyncChunk, type ChunkRange } from './sync-chunks.js';
import { mergeFragment, type FragmentRange } from './streaming.js';

export class DilocoSyncSession {
  private readonly chunks: ChunkRange[];
  /** The part of the flat vector this sync covers. */
  readonly fragment: FragmentRange;
  private pseudo: Float32Array | null = null;
  private readonly means: (Float32Array | null)[];
  private applied = false;

  /** `current`: the stage's flat weights at the end of the interval (read once, asynchronously on WebGPU). */
  constructor(
    private readonly replica: DilocoReplica,
    readonly iteration: number,
    private readonly current: Float32Array,
  ) {
    if (current.length !== replica.length) throw new RangeError(`sync of ${current.length} weights for a stage of ${replica.length}`);
    this.fragment = replica.fragmentAfter(iteration);
    this.chunks = replica.chunks(this.fragment);
    this.means = this.chunks.map(() => null);
  }

  get chunkCount(): number {
    return this.chunks.length;
  }

  /** The encoded uplink chunk `index` of this replica's pseudo-gradient. */
  uplink(index: number): Uint8Array {
    const c = this.chunk(index);
    this.pseudo ??= this.replica.pseudoGradient(this.current, this.fragment);
    return encodeSyncChunk({ stage: this.replica.stage, iteration: this.iteration, direction: 'up', wire: this.replica.hyper.wire }, c, chunkOf(this.pseudo, c));
  }

  /** Takes averaged chunk `index` (FrameError if it is not exactly that chunk; RangeError if sent twice). */
  acceptMean(index: number, frame: Uint8Array | ArrayBuffer): void {
    const c = this.chunk(index);
    if (this.means[index]) throw new RangeError(`averaged chunk ${index} of the sync after iteration ${this.iteration} sent twice`);
    this.means[index] = decodeSyncChunk(frame, { stage: this.replica.stage, iteration: this.iteration, direction: 'down', wire: this.replica.hyper.wire }, c);
  }

  /** Chunks still missing. */
  missing(): number[] {
    return this.means.flatMap((m, i) => (m ? [] : [i]));
  }

  /**
   * The outer step over the averaged chunks; returns the weights to load: `now` (the tab's weights
   * at the apply; by default the snapshot, which is the same when tau = 0) with the fragment
   * replaced by the new synced values (tau = 0) or mixed with them (streaming.ts). Once per session.
   */
  apply(now: Float32Array = this.current): Float32Array {
    if (now.length !== this.replica.length) throw new RangeError(`apply over ${now.length} weights for a stage of ${this.replica.length}`);
    if (this.applied) throw new Error(`the sync after iteration ${this.iteration} was already applied`);
    const missing = this.missing();
    if (missing.length > 0) throw new RangeError(`cannot apply the sync after iteration ${this.iteration}: averaged chunks ${missing.join(', ')} missing`);
    const mean = new Float32Array(this.fragment.count);
    this.chunks.forEach((c, i) => mean.set(this.means[i]!, c.start));
    this.applied = true;
    const weights = Float32Array.from(now);
    mergeFragment(weights, this.fragment, this.replica.applyMean(mean, this.fragment), this.replica.overlap, { merge: this.replica.hyper.streaming?.merge, snapshot: this.current });
    return weights;
  }

  private chunk(index: number): ChunkRange {
    const c = Number.isInteger(index) ? this.chunks[index] : undefined;
    if (!c) throw new RangeError(`chunk ${index} out of range 0..${this.chunks.length - 1}`);
    return c;
  }
}
