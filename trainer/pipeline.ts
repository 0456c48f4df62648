/**
 * Runs synchronous pipeline iterations over in-process stages exactly as the swarm does: each
 * microbatch follows its forward path hop by hop (shared/schedule), then its backward path; the
 * loss gradient is 1 / microbatches; after all microbatches every stage clips and steps.
 *
 * With a lossy wire encoding (`wire`: f16 / int8), every activation and activation gradient
 * that crosses a hop boundary goes through the same frame encode -> decode the tabs do, so the
 * swarm with `--wire X` and this pipeline with `wire: X` compute the same numbers.
 *
 * This is the reference the distributed swarm must match, and the engine of the local trainer,
 * the recovery tests and the churn experiments.
 */
import * as tf from '../shared/model/tf.js';
import type { Stage, GradNorms } from '../shared/model/stage.js';
import type { Batch } from '../shared/data/dataset.js';
import { forwardPath, swapCounter } from '../shared/schedule/paths.js';
import { crossEntropy } from '../shared/model/layers.js';
import { wireRoundTrip, type WireEncoding } from '../shared/protocol/wire-encoding.js';

/** Stash key of hop `hopIndex` (of the forward path) of microbatch `mb`. */
export function stashKey(mb: number, hopIndex: number): string {
  return `${mb}:${hopIndex}`;
}

export interface IterationResult {
  /** Mean training loss over the microbatches. */
  loss: number;
  /** Per-stage gradient norms from clipAndStep. */
  norms: GradNorms[];
}

/** `t` as the next stage receives it over `wire` (disposes `t` when it makes a new tensor). */
function overWire(t: tf.Tensor, wire: WireEncoding, kind: 'act' | 'grad'): tf.Tensor {
  if (wire === 'f32') return t;
  const data = wireRoundTrip(t.dataSync() as Float32Array, t.shape, wire, kind);
  const out = tf.tensor(data, t.shape, 'float32');
  t.dispose();
  return out;
}

function toTensors(b: Batch): { ids: tf.Tensor2D; targets: tf.Tensor2D } {
  return {
    ids: tf.tensor2d(b.tokens, [b.batch, b.seqLen], 'int32'),
    targets: tf.tensor2d(b.targets, [b.batch, b.seqLen], 'int32'),
  };
}

/**
 * Forward then backward of microbatch `mb` through its path (chosen by the swap counter
 * `opts.counter`, shared/schedule/paths.ts swapCounter); every hop boundary carries the tensor in
 * the run's wire encoding (`opts.wire`, encoded and decoded exactly as the relay does); returns its loss.
 */
export function runMicrobatch(stages: Stage[], mb: number, batch: Batch, opts: { swap: boolean; lossScale: number; counter: number; wire?: WireEncoding }): number {
  return runMicrobatchOn((_, stage) => stages[stage]!, stages.length, mb, batch, opts);
}

/**
 * runMicrobatch where hop `i` (of the forward path) runs on `stageAt(i, stage)`: with replicas of
 * a stage, the replica the run's assignment gives that hop (its backward runs on the same one).
 */
export function runMicrobatchOn(
  stageAt: (hopIndex: number, stage: number) => Stage,
  nStages: number,
  mb: number,
  batch: Batch,
  opts: { swap: boolean; lossScale: number; counter: number; wire?: WireEncoding },
): number {
  const wire = opts.wire ?? 'f32';
  const path = forwardPath(opts.counter, nStages, opts.swap);
  const { ids, targets } = toTensors(batch);
  let x: tf.Tensor = ids;
  path.forEach((hop, i) => {
    const out = stageAt(i, hop.stage).forward(stashKey(mb, i), x, hop.segment, hop.segment.head ? targets : undefined);
    x.dispose();
    x = hop.segment.head ? out : overWire(out, wire, 'act');
  });
  const loss = (x.dataSync() as Float32Array)[0]!;
  x.dispose();
  targets.dispose();
  let dy: tf.Tensor | number = opts.lossScale;
  for (let i = path.length - 1; i >= 0; i--) {
    const dx = stageAt(i, path[i]!.stage).backward(stashKey(mb, i), dy);
    if (typeof dy !== 'number') dy.dispose();
    dy = dx ? overWire(dx, wire, 'grad') : 0;
  }
  return loss;
}

/**
 * One synchronous iteration (number `opts.iteration`, counted from 0, which picks the swapped
 * microbatches as the swarm does): every microbatch forward and backward, then clip and step.
 */
export function runIteration(stages: Stage[], batches: Batch[], opts: { swap: boolean; iteration: number; wire?: WireEncoding }): IterationResult {
  let sum = 0;
  batches.forEach((b, mb) => {
    sum += runMicrobatch(stages, mb, b, { swap: opts.swap, lossScale: 1 / batches.length, counter: swapCounter(opts.iteration, batches.length, mb), wire: opts.wire });
  });
  const norms = stages.map((s) => s.clipAndStep());
  return { loss: sum / batches.length, norms };
}

/** Mean validation cross-entropy through the plain (unswapped) path, without stashing; activations cross hops over `wire`. */
export function evaluate(stages: Stage[], batches: Batch[], wire: WireEncoding = 'f32'): number {
  let sum = 0;
  for (const b of batches) {
    sum += tf.tidy(() => {
      const { ids, targets } = toTensors(b);
      let x: tf.Tensor = ids;
      for (const hop of forwardPath(0, stages.length, false)) {
        const y = stages[hop.stage]!.infer(x, hop.segment);
        x = hop.segment.head ? y : overWire(y, wire, 'act');
      }
      return (crossEntropy(x as tf.Tensor2D, tf.reshape(targets, [-1]) as tf.Tensor1D).dataSync() as Float32Array)[0]!;
    });
  }
  return sum / batches.length;
}
