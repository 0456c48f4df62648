/**
 * The coordinator's side of a diloco sync for one stage, streaming: it holds, per chunk, only the
 * chunks that replicas sent and that still wait for a sibling's, never a whole stage, and no
 * weights at all. When every replica still in the sync has delivered chunk k, the mean of chunk k
 * (average.ts, in the fixed order of `slots`) is returned to be encoded and sent to every
 * replica. A replica dropped mid-sync (lost, or quarantined) is left out of every chunk not yet
 * completed; each completed chunk is the mean of the replicas that delivered it.
 *
 * It also keeps what the dashboard and the screening need: each replica's pseudo-gradient sum of
 * squares, and the bytes received.
 */
import { averageInOrder, sumSquares } from './average.js';
import { syncChunks, type ChunkRange } from './sync-chunks.js';

export interface CompletedChunk {
  chunk: ChunkRange;
  mean: Float32Array;
  /** How many replicas the mean is over. */
  count: number;
  /** Replicas the screen rejected at this chunk (left out of it and of every later one). */
  rejected: unknown[];
}

/**
 * Screens one chunk before it is averaged: given each replica's L2 norm of this chunk, returns
 * the replicas to leave out (screen-pseudo-gradients.ts pseudoGradOutliers is the rule).
 */
export type ChunkScreen<K> = (norms: Map<K, number>, chunk: ChunkRange) => K[];

/** No replica is left to average (all lost or rejected). */
export class PseudoGradSumError extends Error {
  constructor(message: string, readonly rejected: unknown[]) {
    super(message);
    this.name = 'PseudoGradSumError';
  }
}

export class PseudoGradSum<K> {
  readonly chunks: ChunkRange[];
  private live: K[];
  private pending: Map<K, Float32Array>[];
  private done: boolean[];
  private squares = new Map<K, number>();
  /** Per replica, the sum over completed chunks of |pg_r - mean|^2; and |mean|^2. */
  private spread = new Map<K, number>();
  private meanSquares = 0;

  constructor(slots: readonly K[], total: number, private readonly opts: { chunkValues?: number; screen?: ChunkScreen<K> } = {}) {
    const chunkValues = opts.chunkValues;
    if (slots.length === 0) throw new RangeError('a sync needs at least one replica');
    if (new Set(slots).size !== slots.length) throw new RangeError('duplicate replica in a sync');
    this.live = [...slots];
    this.chunks = syncChunks(total, chunkValues);
    this.pending = this.chunks.map(() => new Map());
    this.done = this.chunks.map(() => false);
    for (const s of slots) this.squares.set(s, 0);
  }

  /** Replicas still in the sync, in summing order. */
  replicas(): readonly K[] {
    return this.live;
  }

  /**
   * Chunk `index` (already decoded and checked: sync-chunks.ts decodeSyncChunk) from `slot`.
   * Returns the completed chunk when this was the last one missing. Throws on a replica not in the
   * sync, a chunk index out of range, a size mismatch or a duplicate.
   */
  add(slot: K, index: number, data: Float32Array): CompletedChunk | null {
    if (!this.live.includes(slot)) throw new RangeError(`replica ${String(slot)} is not in this sync`);
    const chunk = this.chunks[index];
    if (!chunk) throw new RangeError(`chunk ${index} out of range 0..${this.chunks.length - 1}`);
    if (data.length !== chunk.count) throw new RangeError(`chunk ${index} has ${data.length} values, expected ${chunk.count}`);
    if (this.done[index] || this.pending[index]!.has(slot)) throw new RangeError(`replica ${String(slot)} sent chunk ${index} twice`);
    this.pending[index]!.set(slot, data);
    this.squares.set(slot, this.squares.get(slot)! + sumSquares(data));
    return this.tryComplete(index);
  }

  /** Leaves `slot` out of every chunk not yet completed; returns the chunks that completes. */
  drop(slot: K): CompletedChunk[] {
    if (!this.live.includes(slot)) return [];
    this.live = this.live.filter((s) => s !== slot);
    this.squares.delete(slot);
    const out: CompletedChunk[] = [];
    for (const c of this.chunks) {
      this.pending[c.index]!.delete(slot);
      const r = this.live.length > 0 ? this.tryComplete(c.index) : null;
      if (r) out.push(r);
    }
    return out;
  }

  private tryComplete(index: number): CompletedChunk | null {
    const p = this.pending[index]!;
    if (this.done[index] || p.size < this.live.length) return null;
    const chunk = this.chunks[index]!;
    const rejected = this.opts.screen ? this.opts.screen(new Map(this.live.map((s) => [s, Math.sqrt(sumSquares(p.get(s)!))])), chunk) : [];
    if (rejected.length > 0) {
      this.live = this.live.filter((s) => !rejected.includes(s));
      for (const s of rejected) this.squares.delete(s);
      for (const q of this.pending) for (const s of rejected) q.delete(s);
    }
    this.done[index] = true;
    this.pending[index] = new Map();
    if (this.live.length === 0) throw new PseudoGradSumError(`every replica of the sync was rejected at chunk ${index}`, rejected);
    const mean = averageInOrder(this.live.map((s) => p.get(s)!));
    this.meanSquares += sumSquares(mean);
    for (const s of this.live) {
      const d = p.get(s)!;
      let e = 0;
      for (let i = 0; i < d.length; i++) e += (d[i]! - mean[i]!) ** 2;
      this.spread.set(s, (this.spread.get(s) ?? 0) + e);
    }
    return { chunk, mean, count: this.live.length, rejected };
  }

  /** Whether every chunk is completed. */
  complete(): boolean {
    return this.done.every(Boolean);
  }

  /**
   * The replicas' drift over the completed chunks: mean over live replicas of |pg_r - mean| / |mean|
   * (0 for one replica; the dashboard's figure of how far the replicas wander between syncs).
   */
  drift(): number {
    if (this.live.length < 2 || this.meanSquares === 0) return 0;
    return this.live.reduce((a, s) => a + Math.sqrt((this.spread.get(s) ?? 0) / this.meanSquares), 0) / this.live.length;
  }

  /** L2 norm of each live replica's pseudo-gradient over the chunks it sent so far. */
  norms(): Map<K, number> {
    return new Map([...this.squares].map(([k, s]) => [k, Math.sqrt(s)]));
  }
}
