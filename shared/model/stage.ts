/**
 * One pipeline stage: the unit a volunteer tab trains.
 *
 * forward(key, input) stashes what backward needs for that microbatch. With `backward: 'stash'`
 * (the default) that is every intermediate the hand-written backward (backward.ts) reads, so a
 * backward costs the two gradient products per forward product and nothing more; with
 * `'recompute'` it is the stage input only, and backward reruns the forward first (activation
 * checkpointing: a backward of about 3 forwards instead of 2, for a stash of one activation per
 * microbatch instead of about 12 activations per block plus the attention probabilities). Both run the same kernels, so their
 * results are identical. Several microbatches may be in flight at once: each has its own key.
 * backward(key, gradOutput) returns the gradient with respect to the stage input and accumulates
 * parameter gradients. clipAndStep() clips the accumulated gradient to global L2 norm 1.0 and
 * takes one Adam step. Weights, gradients and Adam's moments stay on the backend's device.
 *
 * A forward call runs a *segment* of the stage: any of its embedding, its blocks, its head. A
 * normal pipeline runs everything a stage owns in one hop; CheckFree+'s swapped microbatches run
 * stage 0's embedding and its blocks as separate hops (see shared/schedule).
 */
import * as tf from './tf.js';
import { numStages, resolveConfig, type ModelConfig, type ResolvedConfig } from './config.js';
import { stageParamSpecs, initialValue, isBlockParam, sizeOf, type ParamSpec } from './params.js';
import * as L from './layers.js';
import { blockBackward, crossEntropyBackward, embedBackward, logitsBackward, type Grads } from './backward.js';
import type { Segment } from '../schedule/paths.js';
import { adamStep, disposeAdamState, freshAdamState, type AdamState } from './adam.js';

/** Which parts of the stage a forward call runs (defined with the microbatch paths). */
export type { Segment };

export interface GradNorms {
  /** Global L2 norm of the accumulated gradient before clipping. */
  preClipNorm: number;
  /** The same after clipping to 1.0 (what clipping and screening use). */
  postClipNorm: number;
  /**
   * L2 norm of the block parameters' gradient after the stage's clip coefficient (embedding and
   * head excluded): what CheckFree weighs neighbours by. Absent in acks from older tabs.
   */
  blockNorm?: number;
}

export type NamedWeights = Record<string, Float32Array>;

/** Adam's state in transferable form. */
export interface OptimizerState {
  step: number;
  lr: number;
  m: NamedWeights;
  v: NamedWeights;
}

export class WeightsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WeightsError';
  }
}

/**
 * How backward gets the forward's intermediates: kept from the forward ('stash', the default:
 * fastest, memory grows with the microbatches in flight) or recomputed from the stashed input
 * ('recompute': for memory-tight devices).
 */
export type BackwardMode = 'stash' | 'recompute';
export const BACKWARD_MODES: readonly BackwardMode[] = ['stash', 'recompute'];

/** What one forward through a segment leaves for its backward. */
interface SegmentSaved {
  batch: number;
  ids: tf.Tensor1D | null;
  blocks: L.BlockSaved[];
  head: L.HeadSaved | null;
  loss: L.LossSaved | null;
}

interface StashEntry {
  segment: Segment;
  /** 'stash' mode: the intermediates. */
  saved: SegmentSaved | null;
  /** 'recompute' mode: the input and targets to rerun the forward from. */
  input: tf.Tensor | null;
  targets: tf.Tensor1D | null;
}

/** Keeps every tensor of a container (survives enclosing tidy scopes until disposed). */
function keepAll(c: tf.TensorContainer): void {
  if (c instanceof tf.Tensor) tf.keep(c);
  else if (Array.isArray(c)) c.forEach(keepAll);
  else if (c && typeof c === 'object') Object.values(c).forEach(keepAll);
}

export const CLIP_NORM = 1.0;

export class Stage {
  readonly config: ResolvedConfig;
  readonly index: number;
  readonly nStages: number;
  readonly hasEmbed: boolean;
  readonly hasHead: boolean;
  readonly specs: readonly ParamSpec[];
  readonly backwardMode: BackwardMode;
  lr: number;
  /** Norms from the last clipAndStep (null before the first). */
  lastNorms: GradNorms | null = null;

  private params = new Map<string, tf.Tensor>();
  private grads = new Map<string, tf.Tensor>();
  private stash = new Map<string, StashEntry>();
  private adam: AdamState = freshAdamState();
  private constants = new Map<number, L.BlockConstants>();

  constructor(config: ModelConfig, index: number, opts: { lr?: number; backward?: BackwardMode } = {}) {
    this.config = resolveConfig(config);
    this.nStages = numStages(this.config);
    this.index = index;
    this.specs = stageParamSpecs(this.config, index);
    this.hasEmbed = index === 0;
    this.hasHead = index === this.nStages - 1;
    this.lr = opts.lr ?? 3e-4;
    this.backwardMode = opts.backward ?? 'stash';
    if (!BACKWARD_MODES.includes(this.backwardMode)) throw new Error(`backward must be one of ${BACKWARD_MODES.join(', ')}, got ${String(opts.backward)}`);
    for (const spec of this.specs) {
      this.params.set(spec.name, tf.tensor(initialValue(this.config, spec), spec.shape));
    }
  }

  /** The segment that runs everything this stage owns. */
  fullSegment(): Segment {
    return { embed: this.hasEmbed, blocks: true, head: this.hasHead };
  }

  paramCount(): number {
    return this.specs.reduce((n, s) => n + sizeOf(s.shape), 0);
  }

  /** Microbatches forwarded but not yet backwarded. */
  inFlight(): string[] {
    return [...this.stash.keys()];
  }

  private checkSegment(seg: Segment): void {
    if (seg.embed && !this.hasEmbed) throw new Error(`stage ${this.index} has no embedding`);
    if (seg.head && !this.hasHead) throw new Error(`stage ${this.index} has no head`);
    if (!seg.embed && !seg.blocks && !seg.head) throw new Error('empty segment');
  }

  private blockConstants(T: number): L.BlockConstants {
    let k = this.constants.get(T);
    if (!k) {
      // Built from JS arrays (no intermediates); kept because forward may call this inside tidy.
      k = L.blockConstants(this.config, T);
      keepAll(k as unknown as tf.TensorContainer);
      this.constants.set(T, k);
    }
    return k;
  }

  /**
   * The stage's maths: the output (activation [B,T,D]; with the head, the mean loss when targets
   * are given, else the logits [B*T,V]) and the intermediates backward reads.
   */
  private run(input: tf.Tensor, seg: Segment, targets: tf.Tensor1D | null): { out: tf.Tensor; saved: SegmentSaved } {
    const p = (n: string) => this.params.get(n)!;
    const B = input.shape[0]!;
    const saved: SegmentSaved = { batch: B, ids: null, blocks: [], head: null, loss: null };
    let x: tf.Tensor2D;
    if (seg.embed) {
      const e = L.embed(input as tf.Tensor2D, p('embed.weight'));
      x = e.y;
      saved.ids = e.ids;
    } else x = tf.reshape(input, [-1, this.config.dModel]) as tf.Tensor2D;
    if (seg.blocks) {
      const k = this.blockConstants(input.shape[1]!);
      for (let j = 0; j < this.config.layersPerStage; j++) {
        const input = x;
        const b = tf.tidy(() => L.block(input, (n) => p(`blocks.${j}.${n}`), this.config, k, B) as unknown as tf.TensorContainer) as unknown as {
          y: tf.Tensor2D;
          saved: L.BlockSaved;
        };
        x = b.y;
        saved.blocks.push(b.saved);
      }
    }
    if (!seg.head) return { out: tf.reshape(x, [B, -1, this.config.dModel]), saved };
    const lg = L.logits(x, p('head.norm.weight'), p('head.lm_head'), this.config.normEps);
    saved.head = lg.saved;
    if (!targets) return { out: lg.y, saved };
    const ce = L.crossEntropySaved(lg.y, targets);
    saved.loss = ce.saved;
    return { out: ce.y, saved };
  }

  /** Backward through what `run` saved: accumulates parameter gradients, returns dInput (or null at the embedding). */
  private backprop(saved: SegmentSaved, seg: Segment, gradOutput: tf.Tensor): tf.Tensor | null {
    const p = (n: string) => this.params.get(n)!;
    const grads: Grads = new Map();
    let dx: tf.Tensor2D;
    if (seg.head) {
      const h = logitsBackward(crossEntropyBackward(gradOutput, saved.loss!), saved.head!, p('head.norm.weight'), p('head.lm_head'));
      grads.set('head.norm.weight', h.dNorm);
      grads.set('head.lm_head', h.dLmHead);
      dx = h.dx;
    } else dx = tf.reshape(gradOutput, [-1, this.config.dModel]) as tf.Tensor2D;
    if (seg.blocks) {
      const k = this.blockConstants(dx.shape[0] / saved.batch);
      for (let j = this.config.layersPerStage - 1; j >= 0; j--) {
        // One tidy per block: its temporaries are freed before the next block's are made.
        const dy = dx;
        const b = tf.tidy(() => {
          const r = blockBackward(dy, saved.blocks[j]!, (n) => p(`blocks.${j}.${n}`), this.config, k);
          return { dx: r.dx, grads: Object.fromEntries(r.grads) };
        });
        for (const [n, g] of Object.entries(b.grads)) grads.set(`blocks.${j}.${n}`, g);
        dx = b.dx;
      }
    }
    for (const [n, g] of grads) this.accumulate(n, g);
    if (seg.embed) {
      this.accumulate('embed.weight', embedBackward(dx, saved.ids!, this.config.vocabSize));
      return null;
    }
    return tf.reshape(dx, [saved.batch, -1, this.config.dModel]);
  }

  /** Adds one microbatch's gradient to the accumulated one (call inside tidy). */
  private accumulate(name: string, g: tf.Tensor): void {
    const prev = this.grads.get(name);
    const next = tf.keep(prev ? tf.add(prev, g) : g);
    prev?.dispose();
    this.grads.set(name, next);
  }

  private checkInput(input: tf.Tensor, seg: Segment): void {
    const { dModel, seqLen } = this.config;
    if (seg.embed) {
      if (input.rank !== 2 || input.dtype !== 'int32') throw new Error(`embedding input must be int32 [B,T], got ${input.dtype} [${input.shape}]`);
    } else if (input.rank !== 3 || input.shape[2] !== dModel || input.dtype !== 'float32') {
      throw new Error(`stage ${this.index} input must be float32 [B,T,${dModel}], got ${input.dtype} [${input.shape}]`);
    }
    if (input.shape[1]! > seqLen) throw new Error(`sequence length ${input.shape[1]} exceeds seqLen ${seqLen}`);
  }

  /**
   * Forward one microbatch through `seg` and stash what backward needs under `key`.
   * `targets` (int32 [B,T]) are required when the segment includes the head; the output is then
   * the mean cross-entropy as a scalar. The caller owns (and disposes) the returned tensor and
   * the input; the stage keeps what it needs on its own.
   */
  forward(key: string, input: tf.Tensor, seg: Segment = this.fullSegment(), targets?: tf.Tensor): tf.Tensor {
    this.checkSegment(seg);
    this.checkInput(input, seg);
    if (this.stash.has(key)) throw new Error(`microbatch ${key} is already in flight on stage ${this.index}`);
    if (seg.head && !targets) throw new Error('the head segment needs targets');
    const flatTargets = () => (seg.head && targets ? (tf.reshape(targets, [-1]) as tf.Tensor1D) : null);
    if (this.backwardMode === 'recompute') {
      const input_ = tf.keep(input.clone());
      const targets_ = flatTargets();
      if (targets_) tf.keep(targets_);
      this.stash.set(key, { segment: seg, saved: null, input: input_, targets: targets_ });
      return tf.tidy(() => this.run(input_, seg, targets_).out);
    }
    const { out, saved } = tf.tidy(() => this.run(input, seg, flatTargets()) as unknown as tf.TensorContainer) as unknown as {
      out: tf.Tensor;
      saved: SegmentSaved;
    };
    keepAll(saved as unknown as tf.TensorContainer);
    this.stash.set(key, { segment: seg, saved, input: null, targets: null });
    return out;
  }

  /**
   * Backward for microbatch `key`: `gradOutput` is dLoss/dOutput (a number for the loss scalar,
   * e.g. 1 / microbatches). Accumulates parameter gradients and returns dLoss/dInput, or null when
   * the segment began at the embedding (token ids have no gradient). Caller owns the result.
   */
  backward(key: string, gradOutput: tf.Tensor | number): tf.Tensor | null {
    const entry = this.stash.get(key);
    if (!entry) throw new Error(`no stashed forward for microbatch ${key} on stage ${this.index}`);
    this.stash.delete(key);
    try {
      return tf.tidy(() => {
        const dy = typeof gradOutput === 'number' ? tf.scalar(gradOutput) : gradOutput;
        const saved = entry.saved ?? this.run(entry.input!, entry.segment, entry.targets).saved;
        return this.backprop(saved, entry.segment, dy) as tf.Tensor;
      }) ?? null;
    } finally {
      disposeEntry(entry);
    }
  }

  /**
   * Resolves once every kernel queued so far on this stage's tensors has run (WebGPU queues
   * work; a read-back of one value waits for it). Costs one tiny read: for measurements, not the
   * hot path.
   */
  async sync(): Promise<void> {
    const probe = tf.tidy(() => tf.slice(tf.reshape(this.params.get(this.specs[0]!.name)!, [-1]), [0], [1]));
    try {
      await probe.data();
    } finally {
      probe.dispose();
    }
  }

  /** Global L2 norm of the accumulated gradient (0 when nothing accumulated). */
  gradNorm(): number {
    return this.preClipNorms().all;
  }

  /** gradNorm without a synchronous read (WebGPU in a worker cannot read back synchronously). */
  async gradNormAsync(): Promise<number> {
    return (await this.preClipNormsAsync()).all;
  }

  /** Pre-clip L2 norms of the whole accumulated gradient and of its block part, in one read. */
  private preClipNorms(): { all: number; blocks: number } {
    if (this.grads.size === 0) return { all: 0, blocks: 0 };
    return tf.tidy(() => this.sqrtPair(this.gradSumsOfSquares().dataSync() as Float32Array));
  }

  private async preClipNormsAsync(): Promise<{ all: number; blocks: number }> {
    if (this.grads.size === 0) return { all: 0, blocks: 0 };
    const sums = tf.tidy(() => this.gradSumsOfSquares());
    try {
      return this.sqrtPair((await sums.data()) as Float32Array);
    } finally {
      sums.dispose();
    }
  }

  private sqrtPair(sums: Float32Array): { all: number; blocks: number } {
    return { all: Math.sqrt(sums[0]!), blocks: Math.sqrt(sums[1]!) };
  }

  /**
   * [sum of squares of every accumulated gradient, the same over the block parameters only]
   * (call inside tidy). Added pairwise, not with tf.addN: tfjs-webgpu's addN binds every input as
   * a storage buffer of one shader, and with more inputs than the device's storage-buffer limit it
   * silently returns a wrong sum (seen with 9-11 gradients on SwiftShader: norms of 0 or off by a
   * few percent).
   */
  private gradSumsOfSquares(): tf.Tensor {
    const squares = [...this.grads].map(([n, g]) => ({ block: isBlockParam(n), sq: tf.sum(tf.square(g)) }));
    const all = squares.map((x) => x.sq).reduce((a, b) => tf.add(a, b));
    const blocks = squares.filter((x) => x.block).map((x) => x.sq);
    return tf.stack([all, blocks.length ? blocks.reduce((a, b) => tf.add(a, b)) : tf.scalar(0)]);
  }

  /**
   * Clip the accumulated gradient to global norm 1.0, take one Adam step, clear the gradients.
   * Returns the pre- and post-clip norms (kept in lastNorms for CheckFree's weighting).
   */
  clipAndStep(): GradNorms {
    this.checkNothingInFlight();
    return this.clipAndStepWithNorm(this.preClipNorms());
  }

  /** clipAndStep with the norm read back asynchronously: what a WebGPU volunteer must use. */
  async clipAndStepAsync(): Promise<GradNorms> {
    this.checkNothingInFlight();
    return this.clipAndStepWithNorm(await this.preClipNormsAsync());
  }

  private checkNothingInFlight(): void {
    if (this.stash.size > 0) {
      throw new Error(`stage ${this.index} cannot step with microbatches in flight: ${this.inFlight().join(', ')}`);
    }
  }

  private clipAndStepWithNorm(pre: { all: number; blocks: number }): GradNorms {
    const preClipNorm = pre.all;
    if (!Number.isFinite(preClipNorm)) {
      this.clearGrads();
      throw new Error(`stage ${this.index}: non-finite gradient norm; update skipped`);
    }
    const scale = preClipNorm > CLIP_NORM ? CLIP_NORM / (preClipNorm + 1e-6) : 1;
    if (scale !== 1) {
      for (const [n, g] of this.grads) {
        this.grads.set(n, tf.keep(tf.mul(g, scale)));
        g.dispose();
      }
    }
    adamStep(this.params, this.grads, this.adam, this.lr);
    this.clearGrads();
    this.lastNorms = { preClipNorm, postClipNorm: preClipNorm * scale, blockNorm: pre.blocks * scale };
    return this.lastNorms;
  }

  private clearGrads(): void {
    for (const g of this.grads.values()) g.dispose();
    this.grads.clear();
  }

  /** Drop every stash and partial gradient (an abandoned iteration leaves no trace). */
  abandon(): void {
    for (const e of this.stash.values()) disposeEntry(e);
    this.stash.clear();
    this.clearGrads();
  }

  /** Start a fresh Adam (zero moments) with learning rate `lr`. */
  resetOptimizer(lr: number): void {
    disposeAdamState(this.adam);
    this.adam = freshAdamState();
    this.lr = lr;
  }

  /**
   * Adam's state as named flat arrays (moments of parameters never updated are absent): what the
   * checkpoint baseline saves and the redundant baseline copies.
   */
  getOptimizerState(): OptimizerState {
    const m: NamedWeights = {};
    const v: NamedWeights = {};
    for (const [n, t] of this.adam.m) m[n] = t.dataSync() as Float32Array;
    for (const [n, t] of this.adam.v) v[n] = t.dataSync() as Float32Array;
    return { step: this.adam.step, lr: this.lr, m, v };
  }

  /** getOptimizerState without synchronous reads (WebGPU cannot read back synchronously). */
  async getOptimizerStateAsync(): Promise<OptimizerState> {
    const m: NamedWeights = {};
    const v: NamedWeights = {};
    for (const [n, t] of this.adam.m) m[n] = (await t.data()) as Float32Array;
    for (const [n, t] of this.adam.v) v[n] = (await t.data()) as Float32Array;
    return { step: this.adam.step, lr: this.lr, m, v };
  }

  /** Restores a state from getOptimizerState (validated like weights; nothing changes on error). */
  setOptimizerState(state: OptimizerState): void {
    if (!Number.isInteger(state.step) || state.step < 0) throw new WeightsError(`optimizer step must be a non-negative integer, got ${state.step}`);
    if (!(state.lr > 0)) throw new WeightsError(`optimizer lr must be > 0, got ${state.lr}`);
    validateWeights(this.specs, state.m, { partial: true });
    validateWeights(this.specs, state.v, { partial: true });
    const fresh = freshAdamState();
    fresh.step = state.step;
    const shapeOf = new Map(this.specs.map((sp) => [sp.name, sp.shape]));
    for (const [n, d] of Object.entries(state.m)) fresh.m.set(n, tf.tensor(d, shapeOf.get(n)!));
    for (const [n, d] of Object.entries(state.v)) fresh.v.set(n, tf.tensor(d, shapeOf.get(n)!));
    disposeAdamState(this.adam);
    this.adam = fresh;
    this.lr = state.lr;
  }

  /** Adam's step count (0 after resetOptimizer). */
  optimizerStep(): number {
    return this.adam.step;
  }

  /**
   * Inference without stashing: activations; with the head, logits [B*T,V], or the mean loss when
   * `targets` are given (validation).
   */
  infer(input: tf.Tensor, seg: Segment = this.fullSegment(), targets?: tf.Tensor): tf.Tensor {
    this.checkSegment(seg);
    this.checkInput(input, seg);
    return tf.tidy(() => this.run(input, seg, seg.head && targets ? (tf.reshape(targets, [-1]) as tf.Tensor1D) : null).out);
  }

  /** Named flat copies of every parameter (synchronous read; use getWeightsAsync on WebGPU). */
  getWeights(): NamedWeights {
    const out: NamedWeights = {};
    for (const s of this.specs) out[s.name] = this.params.get(s.name)!.dataSync() as Float32Array;
    return out;
  }

  async getWeightsAsync(): Promise<NamedWeights> {
    const out: NamedWeights = {};
    for (const s of this.specs) out[s.name] = (await this.params.get(s.name)!.data()) as Float32Array;
    return out;
  }

  /** Accumulated gradients by name (for tests and diagnostics). */
  getGrads(): NamedWeights {
    const out: NamedWeights = {};
    for (const [n, g] of this.grads) out[n] = g.dataSync() as Float32Array;
    return out;
  }

  /** getGrads without synchronous reads (what a WebGPU volunteer must use). */
  async getGradsAsync(): Promise<NamedWeights> {
    const out: NamedWeights = {};
    for (const [n, g] of this.grads) out[n] = (await g.data()) as Float32Array;
    return out;
  }

  /**
   * Replace the accumulated gradients (data parallelism: every replica of a stage receives the
   * sum of their gradients before the step). Names and sizes are checked like weights; a
   * parameter absent from `grads` has no gradient. Not allowed with microbatches in flight.
   */
  setGrads(grads: NamedWeights): void {
    this.checkNothingInFlight();
    validateWeights(this.specs, grads, { partial: true });
    this.clearGrads();
    const shapeOf = new Map(this.specs.map((sp) => [sp.name, sp.shape]));
    for (const [n, d] of Object.entries(grads)) this.grads.set(n, tf.keep(tf.tensor(d, shapeOf.get(n)!)));
  }

  /**
   * Replace parameters by name. Every name must be one of this stage's and have its exact size;
   * values must be finite. Unless `partial`, every parameter must be given. Nothing is changed
   * if anything is wrong.
   */
  setWeights(weights: NamedWeights, opts: { partial?: boolean } = {}): void {
    validateWeights(this.specs, weights, opts);
    for (const s of this.specs) {
      const w = weights[s.name];
      if (!w) continue;
      this.params.get(s.name)!.dispose();
      this.params.set(s.name, tf.tensor(w, s.shape));
    }
  }

  dispose(): void {
    this.abandon();
    for (const p of this.params.values()) p.dispose();
    this.params.clear();
    disposeAdamState(this.adam);
    for (const k of this.constants.values()) L.disposeBlockConstants(k);
    this.constants.clear();
  }
}

function disposeEntry(e: StashEntry): void {
  if (e.saved) tf.dispose(e.saved as unknown as tf.TensorContainer);
  tf.dispose([e.input, e.targets].filter((t): t is tf.Tensor => t !== null));
}

/** Checks named weights against specs; throws WeightsError describing the first problem. */
export function validateWeights(specs: readonly ParamSpec[], weights: NamedWeights, opts: { partial?: boolean } = {}): void {
  const byName = new Map(specs.map((s) => [s.name, s]));
  for (const [name, w] of Object.entries(weights)) {
    const spec = byName.get(name);
    if (!spec) throw new WeightsError(`unknown parameter "${name}"`);
    if (!(w instanceof Float32Array)) throw new WeightsError(`parameter "${name}" must be a Float32Array`);
    const n = sizeOf(spec.shape);
    if (w.length !== n) {
      throw new WeightsError(`parameter "${name}" has ${w.length} values, expected ${n} (shape [${spec.shape}])`);
    }
    for (let i = 0; i < w.length; i++) {
      if (!Number.isFinite(w[i]!)) throw new WeightsError(`parameter "${name}" has a non-finite value at ${i}`);
    }
  }
  if (!opts.partial) {
    for (const s of specs) if (!(s.name in weights)) throw new WeightsError(`missing parameter "${s.name}"`);
  }
}
