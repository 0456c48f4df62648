/**
 * The churn experiment (experiments/experiment.ts) on a configuration small enough for the Node
 * test suite: tiny preset, 4 stages, 6 iterations, one failure rate. One iteration stands for an
 * hour (p_iter = h), so a few iterations see failures. Tests override what they study.
 */
import { DEFAULT_NETWORK } from '../experiments/cost-model.js';
import type { ExperimentOptions } from '../experiments/experiment.js';

export const tinyExperimentOptions = (over: Partial<ExperimentOptions>): ExperimentOptions => ({
  settings: { preset: 'tiny', stages: 4, microbatches: 2, batch: 1, seqLen: 16, lr: 3e-3, seed: 1234 },
  iterations: 6,
  rates: [10],
  strategies: ['checkfree', 'checkpoint'],
  evalEvery: 2,
  evalBatches: 1,
  replicaEvery: 2,
  lrScale: 1.1,
  weighting: 'post-clip',
  failureSeed: 3,
  iterationSeconds: 3600,
  network: DEFAULT_NETWORK,
  replacementWaitSeconds: 10,
  redundantCost: 'compute',
  checkpointEvery: 2,
  targetLoss: 'auto',
  computeTime: 'median',
  reuse: true,
  calibrationIterations: 1,
  maxSlotsFactor: 4,
  out: null,
  ...over,
});
