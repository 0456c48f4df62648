/**
 * Checkpoint-free recovery of lost pipeline stages (CheckFree / CheckFree+): the plan, the
 * averaging and the rebuild, as pure functions on NamedWeights (what the coordinator uses).
 * In-process recovery of Stage objects lives in ./local.js (import it directly; it builds Stages).
 */
export * from './errors.js';
export * from './average.js';
export * from './plan.js';
export * from './replicas.js';
export * from './rebuild.js';
