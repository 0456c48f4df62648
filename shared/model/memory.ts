/**
 * What one pipeline stage holds in memory, counted from the config (float32 everywhere): its
 * weights, Adam's two moments, the accumulated gradient, and the activation stash of the
 * microbatches in flight (what `Stage.forward` keeps for `backward` in 'stash' mode: see the
 * `*Saved` types in layers.ts; in 'recompute' mode only the stage input). The coordinator prints
 * it at start; a tab compares it with its backend's limits (`fitsDevice`).
 */
import { numStages, resolveConfig, type ModelConfig } from './config.js';
import { sizeOf, stageParamSpecs } from './params.js';
import type { BackwardMode } from './stage.js';

export interface StageMemory {
  stage: number;
  params: number;
  weightBytes: number;
  adamBytes: number;
  gradBytes: number;
  /** Stash of one microbatch of `batch` sequences. */
  stashBytesPerMicrobatch: number;
  /** Microbatches whose stash is held at once. */
  inFlight: number;
  stashBytes: number;
  /** The largest single tensor the stage allocates (what a backend's max buffer size must hold). */
  largestTensorBytes: number;
  totalBytes: number;
}

const F32 = 4;

export interface MemoryOptions {
  /** Sequences per microbatch. */
  batch: number;
  /** Microbatches per iteration (no more than these are ever in flight). */
  microbatches?: number;
  /** Stashes held at once; default 1F1B's depth, min(stages - index, microbatches). */
  inFlight?: number;
  backward?: BackwardMode;
}

/**
 * One stage's memory. `inFlight` defaults to 1F1B's depth (the first stage holds the most); pass
 * the scheduler's in-flight window when it is wider.
 */
export function stageMemory(config: ModelConfig, index: number, o: MemoryOptions): StageMemory {
  const c = resolveConfig(config);
  const S = numStages(c);
  const specs = stageParamSpecs(c, index);
  const params = specs.reduce((a, s) => a + sizeOf(s.shape), 0);
  const B = o.batch;
  const T = c.seqLen;
  const N = B * T;
  const D = c.dModel;
  const F = c.ffHidden;
  const V = c.vocabSize;
  const first = index === 0;
  const last = index === S - 1;
  let stash: number;
  if (o.backward === 'recompute') {
    stash = first ? N : N * D; // the stage input (token ids are int32: 4 bytes too)
    if (last) stash += N;
  } else {
    // Per block: 8 [N,D] tensors (two norms' outputs, the attention input, q, k^T, v, merged heads,
    // the MLP input), two [N,1] norm scales, four [N,F] MLP tensors, attention probabilities [B,H,T,T].
    const block = 8 * N * D + 2 * N + 4 * N * F + B * c.nHeads * T * T;
    stash = c.layersPerStage * block;
    if (first) stash += N; // token ids
    if (last) stash += 2 * N * D + N + 2 * N * V; // final norm, the head's input, log-softmax and one-hot targets
  }
  const stashBytesPerMicrobatch = stash * F32;
  const inFlight = o.inFlight ?? Math.min(S - index, o.microbatches ?? Infinity);
  const weightBytes = params * F32;
  const largestParam = Math.max(...specs.map((s) => sizeOf(s.shape)));
  const largestActivation = Math.max(N * F, B * c.nHeads * T * T, first || last ? N * V : 0);
  const largestTensorBytes = Math.max(largestParam, largestActivation) * F32;
  const m = {
    stage: index,
    params,
    weightBytes,
    adamBytes: 2 * weightBytes,
    gradBytes: weightBytes,
    stashBytesPerMicrobatch,
    inFlight,
    stashBytes: stashBytesPerMicrobatch * inFlight,
    largestTensorBytes,
    totalBytes: 0,
  };
  m.totalBytes = m.weightBytes + m.adamBytes + m.gradBytes + m.stashBytes;
  return m;
}

/** Every stage's memory. */
export function modelMemory(config: ModelConfig, o: MemoryOptions): StageMemory[] {
  const c = resolveConfig(config);
  return Array.from({ length: numStages(c) }, (_, i) => stageMemory(c, i, o));
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(b < 10 * 2 ** 20 ? 1 : 0)} MiB`;

/** A table for the console: one line per stage. */
export function formatModelMemory(rows: StageMemory[]): string {
  const lines = rows.map(
    (r) =>
      `  stage ${String(r.stage).padStart(2)}  ${(r.params / 1e6).toFixed(1).padStart(6)} M params  weights ${mib(r.weightBytes).padStart(9)}  ` +
      `adam ${mib(r.adamBytes).padStart(9)}  grads ${mib(r.gradBytes).padStart(9)}  stash ${mib(r.stashBytes).padStart(9)} ` +
      `(${r.inFlight} x ${mib(r.stashBytesPerMicrobatch)})  total ${mib(r.totalBytes).padStart(9)}  largest tensor ${mib(r.largestTensorBytes)}`,
  );
  const total = rows.reduce((a, r) => a + r.params, 0);
  return [`memory per stage (float32; ${(total / 1e6).toFixed(1)} M parameters in all):`, ...lines].join('\n');
}

/** What a tab knows of its backend's limits (WebGPU adapter limits; device memory where exposed). */
export interface DeviceLimits {
  maxBufferSize?: number;
  maxStorageBufferBindingSize?: number;
  /** Bytes the tab may use in all (e.g. navigator.deviceMemory in GiB times 2^30, halved for the page). */
  memoryBytes?: number;
}

/** Whether a stage fits a device: null if it does, else why not (pure; the tab reports it). */
export function fitsDevice(m: StageMemory, limits: DeviceLimits): string | null {
  const over = (what: string, need: number, have: number) => `${what} ${mib(need)} exceeds the device's ${mib(have)}`;
  if (limits.maxBufferSize !== undefined && m.largestTensorBytes > limits.maxBufferSize) {
    return over(`stage ${m.stage}'s largest tensor`, m.largestTensorBytes, limits.maxBufferSize) + ' (maxBufferSize)';
  }
  if (limits.maxStorageBufferBindingSize !== undefined && m.largestTensorBytes > limits.maxStorageBufferBindingSize) {
    return over(`stage ${m.stage}'s largest tensor`, m.largestTensorBytes, limits.maxStorageBufferBindingSize) + ' (maxStorageBufferBindingSize)';
  }
  if (limits.memoryBytes !== undefined && m.totalBytes > limits.memoryBytes) {
    return over(`stage ${m.stage}'s weights, optimizer state and stash`, m.totalBytes, limits.memoryBytes) + ' (memory)';
  }
  return null;
}
