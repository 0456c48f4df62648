/**
 * One pipeline stage: the unit a volunteer tab trains.
 *
 * forward(key, input) stashes what backward needs for that microbatch (the stage input and
 * targets; backward recomputes the stage's activations under tf.grads, like activation
 * checkpointing, so the stash stays one tensor per microbatch). Several microbatches may be in
 * flight at once: each has its own key. backward(key, gradOutput) returns the gradient with
 * respect to the stage input and accumulates parameter gradients. clipAndStep() clips the
 * accumulated gradient to global L2 norm 1.0 and takes one Adam step.
 *
 * A forward call runs a *segment* of the stage: any of its embedding, its blocks, its head. A
 * normal pipeline runs everything a stage owns in one hop; CheckFree+'s swapped microbatches run
 * stage 0's embedding and its blocks as separate hops (see shared/schedule).
 */
import * as tf from './tf.js';
import { numStages, resolveConfig, type ModelConfig, type ResolvedConfig } from './config.js';
import { stageParamSpecs, initialValue, isBlockParam, sizeOf, type ParamSpec } from './params.js';
import * as L from './layers.js';
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

interface StashEntry {
  input: tf.Tensor;
  targets: tf.Tensor1D | null;
  segment: Segment;
}

export const CLIP_NORM = 1.0;

export class Stage {
  readonly config: ResolvedConfig;
  readonly index: number;
  readonly nStages: number;
  readonly hasEmbed: boolean;
  readonly hasHead: boolean;
  readonly specs: readonly ParamSpec[];
  lr: number;
  /** Norms from the last clipAndStep (null before the first). */
  lastNorms: GradNorms | null = null;

  private params = new Map<string, tf.Tensor>();
  private grads = new Map<string, tf.Tensor>();
  private stash = new Map<string, StashEntry>();
  private adam: AdamState = freshAdamState();
  private constants = new Map<number, L.BlockConstants>();

  constructor(config: ModelConfig, index: number, opts: { lr?: number } = {}) {
    this.config = resolveConfig(config);
    this.nStages = numStages(this.config);
    this.index = index;
    this.specs = stageParamSpecs(this.config, index);
    this.hasEmbed = index === 0;
    this.hasHead = index === this.nStages - 1;
    this.lr = opts.lr ?? 3e-4;
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
      tf.keep(k.cos);
      tf.keep(k.sin);
      tf.keep(k.mask);
      this.constants.set(T, k);
    }
    return k;
  }

  /** Names of the parameters a segment reads, in spec order. */
  private segmentParamNames(seg: Segment): string[] {
    return this.specs
      .map((s) => s.name)
      .filter((n) =>
        n.startsWith('embed.') ? seg.embed : n.startsWith('head.') ? seg.head : seg.blocks,
      );
  }

  /**
   * The stage's maths as a pure function of its parameters. Returns the activation [B,T,D], the
   * mean loss (head with targets) or the logits [B*T,V] (head without targets, for sampling).
   */
  private run(p: (name: string) => tf.Tensor, input: tf.Tensor, seg: Segment, targets: tf.Tensor1D | null): tf.Tensor {
    let x: tf.Tensor3D;
    if (seg.embed) x = L.embed(input as tf.Tensor2D, p('embed.weight'));
    else x = input as tf.Tensor3D;
    if (seg.blocks) {
      const k = this.blockConstants(x.shape[1]);
      for (let j = 0; j < this.config.layersPerStage; j++) {
        x = L.block(x, (n) => p(`blocks.${j}.${n}`), this.config, k);
      }
    }
    if (!seg.head) return x;
    const lg = L.logits(x, p('head.norm.weight'), p('head.lm_head'), this.config.normEps);
    return targets ? L.crossEntropy(lg, targets) : lg;
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
   * the mean cross-entropy as a scalar. The caller owns (and disposes) the returned tensor; the
   * stage keeps its own copy of the input.
   */
  forward(key: string, input: tf.Tensor, seg: Segment = this.fullSegment(), targets?: tf.Tensor): tf.Tensor {
    this.checkSegment(seg);
    this.checkInput(input, seg);
    if (this.stash.has(key)) throw new Error(`microbatch ${key} is already in flight on stage ${this.index}`);
    if (seg.head && !targets) throw new Error('the head segment needs targets');
    const kept = tf.keep(input.clone());
    const keptTargets = seg.head && targets ? (tf.keep(tf.reshape(targets, [-1])) as tf.Tensor1D) : null;
    this.stash.set(key, { input: kept, targets: keptTargets, segment: seg });
    return tf.tidy(() => this.run((n) => this.params.get(n)!, kept, seg, keptTargets));
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
    const { input, targets, segment } = entry;
    const names = this.segmentParamNames(segment);
    const wantInputGrad = !segment.embed;
    const result: tf.Tensor | undefined = tf.tidy(() => {
      const dy = typeof gradOutput === 'number' ? tf.scalar(gradOutput) : gradOutput;
      const f = (...args: tf.Tensor[]) => {
        const x = wantInputGrad ? args[0]! : input;
        const ps = wantInputGrad ? args.slice(1) : args;
        const lookup = new Map(names.map((n, i) => [n, ps[i]!]));
        return this.run((n) => lookup.get(n)!, x, segment, targets);
      };
      const xs = names.map((n) => this.params.get(n)!);
      const gs = tf.grads(f)(wantInputGrad ? [input, ...xs] : xs, dy);
      const dx = wantInputGrad ? gs[0]! : undefined;
      const pgs = wantInputGrad ? gs.slice(1) : gs;
      names.forEach((n, i) => {
        const prev = this.grads.get(n);
        const next = prev ? tf.add(prev, pgs[i]!) : pgs[i]!;
        tf.keep(next);
        prev?.dispose();
        this.grads.set(n, next);
      });
      return dx;
    });
    input.dispose();
    targets?.dispose();
    return result ?? null;
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
    for (const e of this.stash.values()) {
      e.input.dispose();
      e.targets?.dispose();
    }
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
    return tf.tidy(() =>
      this.run((n) => this.params.get(n)!, input, seg, seg.head && targets ? (tf.reshape(targets, [-1]) as tf.Tensor1D) : null),
    );
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
    for (const k of this.constants.values()) {
      k.cos.dispose();
      k.sin.dispose();
      k.mask.dispose();
    }
    this.constants.clear();
  }
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
