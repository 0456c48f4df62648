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

export class TokenDataset {
  readonly train: Int32Array;
  readonly val: Int32Array;

  constructor(tokens: Int32Array, readonly seqLen: number, valFraction = 0.1) {
    if (!(valFraction > 0 && valFraction < 1)) throw new DataError('valFraction must be in (0, 1)');
    const nVal = Math.floor(tokens.length * valFraction);
    this.train = tokens.subarray(0, tokens.length - nVal);
    this.val = tokens.subarray(tokens.length - nVal);
    const need = seqLen + 2;
    if (this.val.length < need || this.train.length < need) {
      throw new DataError(
        `text too short: ${tokens.length} tokens give ${this.train.length} train / ${this.val.length} validation tokens; ` +
          `each split needs more than seqLen + 1 = ${seqLen + 1}`,
      );
    }
  }

  private windows(src: Int32Array, starts: number[]): Batch {
    const T = this.seqLen;
    const tokens = new Int32Array(starts.length * T);
    const targets = new Int32Array(starts.length * T);
    starts.forEach((s, b) => {
      tokens.set(src.subarray(s, s + T), b * T);
      targets.set(src.subarray(s + 1, s + T + 1), b * T);
    });
    return { batch: starts.length, seqLen: T, tokens, targets };
  }

  /** The training batch for (iteration, microbatch): random windows, reproducible from the seed. */
  trainBatch(seed: number, iteration: number, microbatch: number, batch: number): Batch {
    const rand = mulberry32(hashSeed(seed, `train:${iteration}:${microbatch}`));
    const maxStart = this.train.length - this.seqLen - 1;
    const starts = Array.from({ length: batch }, () => Math.floor(rand() * (maxStart + 1)));
    return this.windows(this.train, starts);
  }

  /** `count` fixed validation batches: windows evenly spaced over the validation split. */
  valBatches(count: number, batch: number): Batch[] {
    const maxStart = this.val.length - this.seqLen - 1;
    const n = count * batch;
    const starts = Array.from({ length: n }, (_, i) => Math.floor((i * maxStart) / Math.max(1, n - 1)));
    return Array.from({ length: count }, (_, k) => this.windows(this.val, starts.slice(k * batch, (k + 1) * batch)));
  }
}
