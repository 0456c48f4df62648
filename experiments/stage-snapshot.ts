/**
 * Saving and restoring a whole Stage (weights, Adam state, learning rate, last gradient norms) for
 * the checkpoint and redundant baselines: everything a stage's volunteer would have to store, as
 * deep copies, so a restore is exact (the test suite checks it bit for bit).
 */
import { Stage, type GradNorms, type NamedWeights, type OptimizerState } from '../shared/model/stage.js';
import type { ModelConfig } from '../shared/model/config.js';

export interface StageSnapshot {
  index: number;
  weights: NamedWeights;
  optimizer: OptimizerState;
  lastNorms: GradNorms | null;
}

const copy = (w: NamedWeights): NamedWeights => Object.fromEntries(Object.entries(w).map(([n, v]) => [n, v.slice()]));

/** A deep copy of a stage's state. */
export function snapshotStage(stage: Stage): StageSnapshot {
  const o = stage.getOptimizerState();
  return {
    index: stage.index,
    weights: copy(stage.getWeights()),
    optimizer: { step: o.step, lr: o.lr, m: copy(o.m), v: copy(o.v) },
    lastNorms: stage.lastNorms ? { ...stage.lastNorms } : null,
  };
}

/** A new Stage holding exactly `snap`. */
export function restoreStage(config: ModelConfig, snap: StageSnapshot): Stage {
  const stage = new Stage(config, snap.index, { lr: snap.optimizer.lr });
  stage.setWeights(snap.weights);
  stage.setOptimizerState(snap.optimizer);
  stage.lastNorms = snap.lastNorms ? { ...snap.lastNorms } : null;
  return stage;
}
