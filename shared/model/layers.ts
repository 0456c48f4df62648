/**
 * The transformer's maths as pure functions of tensors (no state), so that the same code runs
 * forward, under tf.grads for backward, and for sampling. Shapes: B batch, T time, D model width,
 * H heads, K head size (D / H), F SwiGLU hidden width, V vocabulary.
 */
import * as tf from './tf.js';
import type { ResolvedConfig } from './config.js';

type T2 = tf.Tensor2D;
type T3 = tf.Tensor3D;

/** x @ W for x [B, T, In] and W [In, Out] -> [B, T, Out]. */
export function linear(x: T3, w: tf.Tensor): T3 {
  const [B, T, In] = x.shape;
  const out = tf.matMul(tf.reshape(x, [B * T, In]) as T2, w as T2);
  return tf.reshape(out, [B, T, w.shape[1] as number]) as T3;
}

/** RMSNorm: x / sqrt(mean(x^2) + eps) * weight. */
export function rmsNorm(x: T3, weight: tf.Tensor, eps: number): T3 {
  const ms = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), weight) as T3;
}

/** cos and sin tables [T, K] for rotary embeddings (rotate-half convention). */
export function ropeTables(T: number, K: number, theta: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const half = K / 2;
  const cos = new Float32Array(T * K);
  const sin = new Float32Array(T * K);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const angle = t / Math.pow(theta, (2 * i) / K);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[t * K + i] = c;
      cos[t * K + i + half] = c;
      sin[t * K + i] = s;
      sin[t * K + i + half] = s;
    }
  }
  return { cos: tf.tensor2d(cos, [T, K]), sin: tf.tensor2d(sin, [T, K]) };
}

/** Applies rotary embeddings to x [B, H, T, K]: x*cos + rotate_half(x)*sin. */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D {
  const K = x.shape[3];
  const half = K / 2;
  const x1 = tf.slice(x, [0, 0, 0, 0], [-1, -1, -1, half]);
  const x2 = tf.slice(x, [0, 0, 0, half], [-1, -1, -1, half]);
  const rotated = tf.concat([tf.neg(x2), x1], 3);
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin)) as tf.Tensor4D;
}

/** Additive causal mask [T, T]: 0 on and below the diagonal, -1e9 above. */
export function causalMask(T: number): tf.Tensor2D {
  const m = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = -1e9;
  return tf.tensor2d(m, [T, T]);
}

/** Constant tensors a block needs for sequence length T; built once per stage and reused. */
export interface BlockConstants {
  cos: tf.Tensor2D;
  sin: tf.Tensor2D;
  mask: tf.Tensor2D;
}

export function blockConstants(c: ResolvedConfig, T: number): BlockConstants {
  const { cos, sin } = ropeTables(T, c.dModel / c.nHeads, c.ropeTheta);
  return { cos, sin, mask: causalMask(T) };
}

/** Causal multi-head self-attention with rotary position embeddings. */
export function attention(x: T3, p: (n: string) => tf.Tensor, c: ResolvedConfig, k: BlockConstants): T3 {
  const [B, T, D] = x.shape;
  const H = c.nHeads;
  const K = D / H;
  const heads = (t: T3) => tf.transpose(tf.reshape(t, [B, T, H, K]), [0, 2, 1, 3]) as tf.Tensor4D;
  const q = applyRope(heads(linear(x, p('attn.wq'))), k.cos, k.sin);
  const kk = applyRope(heads(linear(x, p('attn.wk'))), k.cos, k.sin);
  const v = heads(linear(x, p('attn.wv')));
  const scores = tf.add(tf.mul(tf.matMul(q, kk, false, true), 1 / Math.sqrt(K)), k.mask);
  const y = tf.matMul(tf.softmax(scores), v); // [B, H, T, K]
  const merged = tf.reshape(tf.transpose(y, [0, 2, 1, 3]), [B, T, D]) as T3;
  return linear(merged, p('attn.wo'));
}

/** SwiGLU feed-forward: (silu(x Wg) * (x Wu)) Wd. */
export function swiglu(x: T3, p: (n: string) => tf.Tensor): T3 {
  const gate = linear(x, p('mlp.w_gate'));
  const up = linear(x, p('mlp.w_up'));
  const act = tf.mul(tf.mul(gate, tf.sigmoid(gate)), up) as T3;
  return linear(act, p('mlp.w_down'));
}

/** One pre-norm transformer block: x + attn(norm(x)); x + mlp(norm(x)). */
export function block(x: T3, p: (n: string) => tf.Tensor, c: ResolvedConfig, k: BlockConstants): T3 {
  const h = tf.add(x, attention(rmsNorm(x, p('attn_norm.weight'), c.normEps), p, c, k)) as T3;
  return tf.add(h, swiglu(rmsNorm(h, p('mlp_norm.weight'), c.normEps), p)) as T3;
}

/**
 * Token embedding lookup: ids [B, T] -> [B, T, D], written as onehot(ids) @ W. A gather would do
 * less arithmetic, but its gradient (UnsortedSegmentSum) is missing from the wasm backend; with a
 * byte vocabulary the matmul is cheap and runs on every backend.
 */
export function embed(ids: tf.Tensor2D, weight: tf.Tensor): T3 {
  const [B, T] = ids.shape;
  const V = weight.shape[0] as number;
  const onehot = tf.oneHot(tf.reshape(ids, [B * T]) as tf.Tensor1D, V);
  return tf.reshape(tf.matMul(onehot, weight as T2), [B, T, weight.shape[1] as number]) as T3;
}

/** Final norm and LM head: [B, T, D] -> logits [B*T, V]. */
export function logits(x: T3, normWeight: tf.Tensor, lmHead: tf.Tensor, eps: number): tf.Tensor2D {
  const [B, T, D] = x.shape;
  const h = rmsNorm(x, normWeight, eps);
  return tf.matMul(tf.reshape(h, [B * T, D]) as T2, lmHead as T2);
}

/** Mean token cross-entropy of logits [N, V] against integer targets [N]. */
export function crossEntropy(logitsNV: tf.Tensor2D, targets: tf.Tensor1D): tf.Scalar {
  const V = logitsNV.shape[1];
  const logp = tf.logSoftmax(logitsNV);
  const onehot = tf.oneHot(targets, V);
  return tf.neg(tf.mean(tf.sum(tf.mul(logp, onehot), -1))) as tf.Scalar;
}
