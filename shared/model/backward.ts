/**
 * The backward pass written by hand, one function per forward function in layers.ts, reading
 * the intermediates that forward saved. tf.grads would rerun the forward and build its own
 * gradient kernels (on wasm its matmul gradients use transpose flags, ten times slower than the
 * plain product); written out, every gradient product goes through `mm`/`bmm` and nothing is
 * computed twice. Checked against tf.grads, finite differences and the unsplit model in stage.test.ts.
 * Each function returns the input gradient and the parameter gradients by (block-local) name.
 */
import * as tf from './tf.js';
import type { ResolvedConfig } from './config.js';
import { bmm, mm } from './matmul.js';
import {
  swapHalves,
  type AttnSaved,
  type BlockConstants,
  type BlockSaved,
  type HeadSaved,
  type LossSaved,
  type MlpSaved,
  type NormSaved,
  type ParamLookup,
} from './layers.js';

type T2 = tf.Tensor2D;
type T4 = tf.Tensor4D;
export type Grads = Map<string, tf.Tensor>;

/** RMSNorm backward: dx = r * (dxn - xn * mean(dxn * xn)), dxn = dy * w; dw = sum_N(dy * xn). */
export function rmsNormBackward(dy: T2, s: NormSaved, weight: tf.Tensor): { dx: T2; dw: tf.Tensor1D } {
  const dw = tf.sum(tf.mul(dy, s.xn), 0) as tf.Tensor1D;
  const dxn = tf.mul(dy, weight);
  const dx = tf.mul(s.r, tf.sub(dxn, tf.mul(s.xn, tf.mean(tf.mul(dxn, s.xn), -1, true)))) as T2;
  return { dx, dw };
}

/** Rotary backward: the transpose of x*cos + swap(x)*sin is dy*cos + swap(dy*sin). */
function ropeBackward(dy: T4, cos: tf.Tensor3D, sin: tf.Tensor3D): T4 {
  return tf.add(tf.mul(dy, cos), swapHalves(tf.mul(dy, sin) as T4)) as T4;
}

export function attentionBackward(dy: T2, s: AttnSaved, p: ParamLookup, c: ResolvedConfig, k: BlockConstants): { dx: T2; grads: Grads } {
  const [N, D] = dy.shape;
  const [B, H, T, K] = s.q.shape;
  const grads: Grads = new Map();
  grads.set('attn.wo', mm(s.merged, dy, true, false));
  const dMerged = mm(dy, p('attn.wo') as T2, false, true);
  const dY = tf.transpose(tf.reshape(dMerged, [B, T, H, K]), [0, 2, 1, 3]) as T4;
  const dP = bmm(dY, s.v, false, true) as T4;
  const dV = bmm(s.p, dY, true, false) as T4;
  // Softmax backward; the mask is a constant and the 1/sqrt(K) scale lives in the query tables.
  const dS = tf.mul(s.p, tf.sub(dP, tf.sum(tf.mul(dP, s.p), -1, true))) as T4;
  const dQ = bmm(dS, s.kT, false, true) as T4; // [B,H,T,K]
  const dKT = bmm(s.q, dS, true, false) as T4; // [B,H,K,T]
  const rows = (t: T4) => tf.reshape(t, [N, D]) as T2;
  const dq = rows(ropeBackward(tf.transpose(dQ, [0, 2, 1, 3]), k.cosQ, k.sinQ));
  const dk = rows(ropeBackward(tf.transpose(dKT, [0, 3, 1, 2]), k.cos, k.sin));
  const dv = rows(tf.transpose(dV, [0, 2, 1, 3]));
  grads.set('attn.wq', mm(s.a, dq, true, false));
  grads.set('attn.wk', mm(s.a, dk, true, false));
  grads.set('attn.wv', mm(s.a, dv, true, false));
  const dx = tf.addN([
    mm(dq, p('attn.wq') as T2, false, true),
    mm(dk, p('attn.wk') as T2, false, true),
    mm(dv, p('attn.wv') as T2, false, true),
  ]) as T2;
  return { dx, grads };
}

/** SwiGLU backward; d silu(g)/dg = sig * (1 + g * (1 - sig)). */
export function swigluBackward(dy: T2, s: MlpSaved, p: ParamLookup): { dx: T2; grads: Grads } {
  const grads: Grads = new Map();
  grads.set('mlp.w_down', mm(s.act, dy, true, false));
  const dAct = mm(dy, p('mlp.w_down') as T2, false, true);
  const dUp = tf.mul(dAct, tf.mul(s.gate, s.sig)) as T2;
  const dSilu = tf.mul(dAct, s.up);
  const dGate = tf.mul(dSilu, tf.mul(s.sig, tf.add(1, tf.mul(s.gate, tf.sub(1, s.sig))))) as T2;
  grads.set('mlp.w_gate', mm(s.m, dGate, true, false));
  grads.set('mlp.w_up', mm(s.m, dUp, true, false));
  const dx = tf.add(mm(dGate, p('mlp.w_gate') as T2, false, true), mm(dUp, p('mlp.w_up') as T2, false, true)) as T2;
  return { dx, grads };
}

/** Backward of layers.block. */
export function blockBackward(dy: T2, s: BlockSaved, p: ParamLookup, c: ResolvedConfig, k: BlockConstants): { dx: T2; grads: Grads } {
  const mlp = swigluBackward(dy, s.mlp, p);
  const n2 = rmsNormBackward(mlp.dx, s.norm2, p('mlp_norm.weight'));
  const dh = tf.add(dy, n2.dx) as T2;
  const at = attentionBackward(dh, s.attn, p, c, k);
  const n1 = rmsNormBackward(at.dx, s.norm1, p('attn_norm.weight'));
  const grads: Grads = new Map([...at.grads, ...mlp.grads]);
  grads.set('attn_norm.weight', n1.dw);
  grads.set('mlp_norm.weight', n2.dw);
  return { dx: tf.add(dh, n1.dx) as T2, grads };
}

/** Embedding backward: dW = onehot(ids)^T @ dy (the gather's gradient, as a product every backend runs). */
export function embedBackward(dy: T2, ids: tf.Tensor1D, vocabSize: number): tf.Tensor2D {
  return mm(tf.oneHot(ids, vocabSize) as T2, dy, true, false);
}

/** Cross-entropy backward: dLogits = (softmax - onehot) * dLoss / N. */
export function crossEntropyBackward(dLoss: tf.Tensor, s: LossSaved): T2 {
  const N = s.logp.shape[0];
  return tf.mul(tf.sub(tf.exp(s.logp), s.onehot), tf.div(dLoss, N)) as T2;
}

/** Final norm and LM head backward. */
export function logitsBackward(dLogits: T2, s: HeadSaved, normWeight: tf.Tensor, lmHead: tf.Tensor): { dx: T2; dNorm: tf.Tensor1D; dLmHead: T2 } {
  const dLmHead = mm(s.h, dLogits, true, false);
  const n = rmsNormBackward(mm(dLogits, lmHead as T2, false, true), s.norm, normWeight);
  return { dx: n.dx, dNorm: n.dw, dLmHead };
}
