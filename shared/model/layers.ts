/**
 * The transformer's forward maths as pure functions of tensors (no state). Each returns its
 * output and the intermediates its backward (shared/model/backward.ts) reads, so one forward
 * serves training (the stage stashes the intermediates), recomputation, and inference (tidy
 * drops them). Activations are 2-D [N, D] with N = B*T rows, token-major; attention reshapes to
 * heads inside. Shapes: B batch, T time, D model width, H heads, K head size (D / H), F SwiGLU
 * hidden width, V vocabulary.
 */
import * as tf from './tf.js';
import type { ResolvedConfig } from './config.js';
import { bmm, mm } from './matmul.js';

type T2 = tf.Tensor2D;
type T4 = tf.Tensor4D;
export type ParamLookup = (name: string) => tf.Tensor;

/** RMSNorm's saved state: the normalised input x / rms(x) [N, D] and 1 / rms(x) [N, 1]. */
export interface NormSaved {
  xn: T2;
  r: T2;
}

/** RMSNorm: x / sqrt(mean(x^2) + eps) * weight, over the last axis of x [N, D]. */
export function rmsNorm(x: T2, weight: tf.Tensor, eps: number): { y: T2; saved: NormSaved } {
  const r = tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps)) as T2;
  const xn = tf.mul(x, r) as T2;
  return { y: tf.mul(xn, weight) as T2, saved: { xn, r } };
}

/**
 * Rotary tables for sequence length T, shaped [T, 1, K] to broadcast over [B, T, H, K]. The
 * rotate-half convention x*cos + rotate_half(x)*sin is computed as x*cos + swap(x)*sinSigned,
 * where swap exchanges the two halves of the head (one Reverse kernel, no slices or concat)
 * and sinSigned is (-sin, +sin). `scale` multiplies both tables (the queries' copy carries
 * attention's 1/sqrt(K), so the scores need no scaling kernel).
 */
export function ropeTables(T: number, K: number, theta: number, scale = 1): { cos: tf.Tensor3D; sin: tf.Tensor3D } {
  const half = K / 2;
  const cos = new Float32Array(T * K);
  const sin = new Float32Array(T * K);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const angle = t / Math.pow(theta, (2 * i) / K);
      const c = Math.cos(angle) * scale;
      const s = Math.sin(angle) * scale;
      cos[t * K + i] = c;
      cos[t * K + i + half] = c;
      sin[t * K + i] = -s;
      sin[t * K + i + half] = s;
    }
  }
  return { cos: tf.tensor3d(cos, [T, 1, K]), sin: tf.tensor3d(sin, [T, 1, K]) };
}

/**
 * Exchanges the two halves of the last axis of x [B, T, H, K]. Its own transpose. One Reverse
 * on a rank-3 view (on wasm 3.9 ms for small's [4,128,4,32], against 5.7 reversing a rank-5
 * view, 4.6 for a gather and 5.3 for slice+concat).
 */
export function swapHalves(x: T4): T4 {
  const [B, T, H, K] = x.shape;
  return tf.reshape(tf.reverse(tf.reshape(x, [B * T * H, 2, K / 2]), 1), [B, T, H, K]) as T4;
}

/** Rotary embedding of x [B, T, H, K] with tables from ropeTables. */
export function applyRope(x: T4, cos: tf.Tensor3D, sin: tf.Tensor3D): T4 {
  return tf.add(tf.mul(x, cos), tf.mul(swapHalves(x), sin)) as T4;
}

/** Additive causal mask [T, T]: 0 on and below the diagonal, -1e9 above. */
export function causalMask(T: number): T2 {
  const m = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = -1e9;
  return tf.tensor2d(m, [T, T]);
}

/** Constant tensors a block needs for sequence length T; built once per stage and reused. */
export interface BlockConstants {
  /** Rotary tables for the keys. */
  cos: tf.Tensor3D;
  sin: tf.Tensor3D;
  /** Rotary tables for the queries, scaled by 1/sqrt(K). */
  cosQ: tf.Tensor3D;
  sinQ: tf.Tensor3D;
  mask: T2;
}

export function blockConstants(c: ResolvedConfig, T: number): BlockConstants {
  const K = c.dModel / c.nHeads;
  const { cos, sin } = ropeTables(T, K, c.ropeTheta);
  const q = ropeTables(T, K, c.ropeTheta, 1 / Math.sqrt(K));
  return { cos, sin, cosQ: q.cos, sinQ: q.sin, mask: causalMask(T) };
}

export function disposeBlockConstants(k: BlockConstants): void {
  tf.dispose([k.cos, k.sin, k.cosQ, k.sinQ, k.mask]);
}

/** Attention's saved state. q is scaled and rotated [B,H,T,K]; kT rotated keys [B,H,K,T]. */
export interface AttnSaved {
  a: T2;
  q: T4;
  kT: T4;
  v: T4;
  p: T4;
  merged: T2;
}

/** Causal multi-head self-attention with rotary position embeddings on a [N, D] = [B*T, D]. */
export function attention(a: T2, p: ParamLookup, c: ResolvedConfig, k: BlockConstants, B: number): { y: T2; saved: AttnSaved } {
  const [N, D] = a.shape;
  const T = N / B;
  const H = c.nHeads;
  const K = D / H;
  const split = (t: T2) => tf.reshape(t, [B, T, H, K]) as T4;
  const q = tf.transpose(applyRope(split(mm(a, p('attn.wq') as T2)), k.cosQ, k.sinQ), [0, 2, 1, 3]);
  // Keys go straight to [B, H, K, T]: the scores are then a plain q @ kT.
  const kT = tf.transpose(applyRope(split(mm(a, p('attn.wk') as T2)), k.cos, k.sin), [0, 2, 3, 1]);
  const v = tf.transpose(split(mm(a, p('attn.wv') as T2)), [0, 2, 1, 3]);
  const probs = tf.softmax(tf.add(bmm(q, kT), k.mask)) as T4;
  const merged = tf.reshape(tf.transpose(bmm(probs, v), [0, 2, 1, 3]), [N, D]) as T2;
  return { y: mm(merged, p('attn.wo') as T2), saved: { a, q, kT, v, p: probs, merged } };
}

/** SwiGLU's saved state: its input m, the gate's pre-activation, sigmoid(gate), up, and act. */
export interface MlpSaved {
  m: T2;
  gate: T2;
  sig: T2;
  up: T2;
  act: T2;
}

/** SwiGLU feed-forward: (silu(m Wg) * (m Wu)) Wd. */
export function swiglu(m: T2, p: ParamLookup): { y: T2; saved: MlpSaved } {
  const gate = mm(m, p('mlp.w_gate') as T2);
  const up = mm(m, p('mlp.w_up') as T2);
  const sig = tf.sigmoid(gate) as T2;
  const act = tf.mul(tf.mul(gate, sig), up) as T2;
  return { y: mm(act, p('mlp.w_down') as T2), saved: { m, gate, sig, up, act } };
}

export interface BlockSaved {
  norm1: NormSaved;
  attn: AttnSaved;
  norm2: NormSaved;
  mlp: MlpSaved;
}

/** One pre-norm transformer block on x [B*T, D]: h = x + attn(norm(x)); h + mlp(norm(h)). */
export function block(x: T2, p: ParamLookup, c: ResolvedConfig, k: BlockConstants, B: number): { y: T2; saved: BlockSaved } {
  const n1 = rmsNorm(x, p('attn_norm.weight'), c.normEps);
  const at = attention(n1.y, p, c, k, B);
  const h = tf.add(x, at.y) as T2;
  const n2 = rmsNorm(h, p('mlp_norm.weight'), c.normEps);
  const ml = swiglu(n2.y, p);
  return { y: tf.add(h, ml.y) as T2, saved: { norm1: n1.saved, attn: at.saved, norm2: n2.saved, mlp: ml.saved } };
}

/** Token embedding lookup: ids [B, T] -> [B*T, D] with a gather (its backward is in backward.ts). */
export function embed(ids: tf.Tensor2D, weight: tf.Tensor): { y: T2; ids: tf.Tensor1D } {
  const flat = tf.reshape(ids, [-1]) as tf.Tensor1D;
  return { y: tf.gather(weight as T2, flat) as T2, ids: flat };
}

export interface HeadSaved {
  norm: NormSaved;
  /** The normed activation the LM head multiplies [N, D]. */
  h: T2;
}

/** Final norm and LM head: [N, D] -> logits [N, V]. */
export function logits(x: T2, normWeight: tf.Tensor, lmHead: tf.Tensor, eps: number): { y: T2; saved: HeadSaved } {
  const n = rmsNorm(x, normWeight, eps);
  return { y: mm(n.y, lmHead as T2), saved: { norm: n.saved, h: n.y } };
}

export interface LossSaved {
  /** log-softmax of the logits [N, V]. */
  logp: T2;
  /** One-hot targets [N, V]. */
  onehot: T2;
}

/** Mean token cross-entropy of logits [N, V] against integer targets [N]. */
export function crossEntropy(logitsNV: T2, targets: tf.Tensor1D): tf.Scalar {
  return crossEntropySaved(logitsNV, targets).y;
}

/** crossEntropy and what its backward reads. */
export function crossEntropySaved(logitsNV: T2, targets: tf.Tensor1D): { y: tf.Scalar; saved: LossSaved } {
  const logp = tf.logSoftmax(logitsNV) as T2;
  const onehot = tf.oneHot(targets, logitsNV.shape[1]) as T2;
  return { y: tf.neg(tf.mean(tf.sum(tf.mul(logp, onehot), -1))) as tf.Scalar, saved: { logp, onehot } };
}
