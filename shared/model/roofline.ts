/**
 * What a device gives the swarm: one stage's forward, backward and optimizer step timed on the
 * current tfjs backend, its matmul FLOPs counted from the config, and the same backend's rate on
 * the stage's own matmul shape, so that achieved / matmul rate says how close the stage runs to
 * the limit the device sets. Used by `npm run bench:compute` (Node and Chromium) and by the
 * volunteer worker's probe. Every timing ends with a read-back, so asynchronous backends
 * (WebGPU) cannot hide queued work.
 */
import * as tf from './tf.js';
import { resolveConfig, numStages, type ModelConfig } from './config.js';
import { Stage, type BackwardMode } from './stage.js';
import { mm } from './matmul.js';

/** Matmul FLOPs of one microbatch of `batch` sequences through a whole stage. */
export interface StageFlops {
  forward: number;
  backward: number;
}

/**
 * Counted from the config: a block's seven linear products (2*N*(4*D^2 + 3*D*F)) and attention's
 * two products per head (2*2*B*H*T^2*K, the full square though half is masked); the head's
 * [N,D]x[D,V]. A backward does twice its forward's products (the input and the weight gradient),
 * plus the embedding's gradient [V,N]x[N,D] on the first stage.
 */
export function stageFlops(config: ModelConfig, index: number, batch: number): StageFlops {
  const c = resolveConfig(config);
  const T = c.seqLen;
  const N = batch * T;
  const D = c.dModel;
  const K = D / c.nHeads;
  const block = 2 * N * (4 * D * D + 3 * D * c.ffHidden) + 4 * batch * c.nHeads * T * T * K;
  const head = index === numStages(c) - 1 ? 2 * N * D * c.vocabSize : 0;
  const embedGrad = index === 0 ? 2 * N * D * c.vocabSize : 0;
  const forward = c.layersPerStage * block + head;
  return { forward, backward: 2 * forward + embedGrad };
}

export interface StageTiming {
  forwardMs: number;
  backwardMs: number;
  stepMs: number;
  /** tf.memory() bytes a microbatch in flight holds between its forward and its backward. */
  stashBytes: number;
  /**
   * Most tf.memory() bytes alive at once during a forward and backward, above the state before
   * them (taken on the first call, so it includes the stage's rotary tables and mask).
   */
  peakBytes: number;
}

export interface MeasureOptions {
  batch: number;
  reps: number;
  warmup?: number;
  backward?: BackwardMode;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
}

/** Median forward, backward and step times of stage `index` (inputs random, loss at the head). */
export async function measureStage(config: ModelConfig, index: number, opts: MeasureOptions): Promise<StageTiming> {
  const c = resolveConfig(config);
  const stage = new Stage(c, index, { lr: 1e-3, backward: opts.backward });
  const B = opts.batch;
  const T = c.seqLen;
  const first = stage.hasEmbed;
  const x = first ? tf.randomUniform([B, T], 0, c.vocabSize, 'int32') : tf.randomNormal([B, T, c.dModel]);
  const y = stage.hasHead ? tf.randomUniform([B, T], 0, c.vocabSize, 'int32') : undefined;
  const dy = stage.hasHead ? 1 : tf.randomNormal([B, T, c.dModel]);
  const f: number[] = [];
  const b: number[] = [];
  const s: number[] = [];
  let stashBytes = 0;
  let peakBytes = 0;
  try {
    // The warm-up runs under tf.profile, which tracks the peak memory (and is not timed).
    const base = tf.memory().numBytes;
    for (let w = 0; w < (opts.warmup ?? 1); w++) {
      const info = await tf.profile(async () => {
        stage.forward('m', x, stage.fullSegment(), y).dispose();
        stage.backward('m', dy)?.dispose();
      });
      peakBytes = Math.max(peakBytes, info.peakBytes - base);
      await stage.clipAndStepAsync();
    }
    for (let r = 0; r < opts.reps; r++) {
      const before = tf.memory().numBytes;
      const t0 = performance.now();
      const out = stage.forward('m', x, stage.fullSegment(), y);
      await out.data();
      const t1 = performance.now();
      out.dispose();
      stashBytes = tf.memory().numBytes - before;
      const dx = stage.backward('m', dy);
      // The first stage returns no input gradient: wait on the gradients themselves.
      if (dx) await dx.data();
      else await stage.sync();
      const t2 = performance.now();
      dx?.dispose();
      await stage.clipAndStepAsync();
      await stage.sync();
      const t3 = performance.now();
      f.push(t1 - t0);
      b.push(t2 - t1);
      s.push(t3 - t2);
    }
  } finally {
    stage.dispose();
    tf.dispose([x, ...(y ? [y] : []), ...(typeof dy === 'number' ? [] : [dy])]);
  }
  return { forwardMs: median(f), backwardMs: median(b), stepMs: median(s), stashBytes, peakBytes };
}

/**
 * GFLOP/s of `op` (which does `flops` floating-point operations): one warm-up, then the median
 * over `reps` of two products queued back to back with the last one read back.
 */
export async function measureRate(op: () => tf.Tensor, flops: number, reps: number): Promise<number> {
  const once = async (count: number) => {
    const outs = Array.from({ length: count }, op);
    await outs[outs.length - 1]!.data();
    tf.dispose(outs);
  };
  await once(1);
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await once(2);
    times.push((performance.now() - t0) / 2);
  }
  return flops / median(times) / 1e6;
}

/** GFLOP/s of op(a) @ op(b) for a [m, k] x [k, n] product through `mm` (what the stage calls). */
export async function measureMatmul(m: number, k: number, n: number, opts: { reps: number; transposeA?: boolean; transposeB?: boolean }): Promise<number> {
  const a = tf.randomNormal(opts.transposeA ? [k, m] : [m, k]) as tf.Tensor2D;
  const b = tf.randomNormal(opts.transposeB ? [n, k] : [k, n]) as tf.Tensor2D;
  try {
    return await measureRate(() => mm(a, b, opts.transposeA, opts.transposeB), 2 * m * k * n, opts.reps);
  } finally {
    tf.dispose([a, b]);
  }
}
