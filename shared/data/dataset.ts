/**
 * Token windows for next-token prediction. The token stream is split once into train (first
 * 90%) and validation (last 10%). A batch is `batch` windows of `seqLen + 1` tokens: the first
 * seqLen are the inputs and the last seqLen (shifted by one) the targets.
 *
 * Training windows are drawn from a PRNG keyed by (seed, iteration, microbatch), so the local
 * trainer, the coordinator and a restarted coordinator all see exactly the same data for the
 * same iteration, with no state to carry.
 */
import { hashSeed, mulberry32 } from '../model/rng.js';

export interface Batch {
  batch: number;
  seqLen: number;
  /** [batch * seqLen] input token ids. */
  tokens: Int32Array;
  /** [batch * seqLen] next-token targets. */
  targets: Int32Array;
}

export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataError';
  }
}

/** Where a dataset's tokens live: in memory, or on disk read by position (trainer/corpus/file-tokens.ts). */
export interface TokenStore {
  readonly length: number;
  /** Tokens [start, start + count) (a fresh array the caller may keep). */
  read(start: number, count: number): Int32Array;
}

export class MemoryTokens implements TokenStore {
  constructor(private readonly tokens: Int32Array) {}
  get length() {
    return this.tokens.length;
  }
  read(start: number, count: number): Int32Array {
    return this.tokens.slice(start, start + count);
  }
}

export class TokenDataset {
  readonly tokens: TokenStore;
  /** Tokens in the train split (the first ones) and the validation split (the last `valFraction`). */
  readonly trainTokens: number;
  readonly valTokens: number;

  constructor(tokens: Int32Array | TokenStore, readonly seqLen: number, valFraction = 0.1) {
    if (!(valFraction > 0 && valFraction < 1)) throw new DataError('valFraction must be in (0, 1)');
    this.tokens = tokens instanceof Int32Array ? new MemoryTokens(tokens) : tokens;
    const n = this.tokens.length;
    const nVal = Math.floor(n * valFraction);
    this.trainTokens = n - nVal;
    this.valTokens = nVal;
    const need = seqLen + 2;
    if (this.valTokens < need || this.trainTokens < need) {
      throw new DataError(
        `text too short: ${n} tokens give ${this.trainTokens} train / ${this.valTokens} validation tokens; ` +
          `each split needs more than seqLen + 1 = ${seqLen + 1}`,
      );
    }
  }

  /** Windows of seqLen + 1 tokens starting at these offsets of the split beginning at `base`. */
  private windows(base: number, starts: number[]): Batch {
    const T = this.seqLen;
    const tokens = new Int32Array(starts.length * T);
    const targets = new Int32Array(starts.length * T);
    starts.forEach((s, b) => {
      const w = this.tokens.read(base + s, T + 1);
      tokens.set(w.subarray(0, T), b * T);
      targets.set(w.subarray(1, T + 1), b * T);
    });
    return { batch: starts.length, seqLen: T, tokens, targets };
  }

  /** The training batch for (iteration, microbatch): random windows, reproducible from the seed. */
  trainBatch(seed: number, iteration: number, microbatch: number, batch: number): Batch {
    const rand = mulberry32(hashSeed(seed, `train:${iteration}:${microbatch}`));
    const maxStart = this.trainTokens - this.seqLen - 1;
    const starts = Array.from({ length: batch }, () => Math.floor(rand() * (maxStart + 1)));
    return this.windows(0, starts);
  }

  /** `count` fixed validation batches: windows evenly spaced over the validation split. */
  valBatches(count: number, batch: number): Batch[] {
    const maxStart = this.valTokens - this.seqLen - 1;
    const n = count * batch;
    const starts = Array.from({ length: n }, (_, i) => Math.floor((i * maxStart) / Math.max(1, n - 1)));
    return Array.from({ length: count }, (_, k) => this.windows(this.trainTokens, starts.slice(k * batch, (k + 1) * batch)));
  }
}
