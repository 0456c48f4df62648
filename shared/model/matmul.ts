/**
 * Matrix products as fast as the current backend allows. tfjs's wasm backend hands a 2-D product
 * to XNNPACK only when neither operand is transposed: with a transpose flag the same
 * [512,128] x [128,512] product ran at 1.7 GFLOP/s instead of 18-25 here (`npm run bench:compute`
 * prints both). So on wasm a 2-D transpose is materialised first (a copy costs far less than
 * the slow product); WebGPU, WebGL and cpu read transposed operands in the kernel itself.
 * Batched products (attention's, rank 3 and 4) do not reach XNNPACK on wasm at all (0.5-1.7
 * GFLOP/s here): `bmm` runs them there as one 2-D product per matrix of the batch, which came
 * out 1.7-5x faster on small's [16,128,32] x [16,32,128] even counting the unstack and stack.
 */
import * as tf from './tf.js';

/** Whether `mm` materialises transposes on the current backend. */
export function materialisesTransposes(): boolean {
  return tf.getBackend() === 'wasm';
}

/** a @ b with optional transposes: op(a) @ op(b). */
export function mm<R extends tf.Rank>(a: tf.Tensor<R>, b: tf.Tensor<R>, transposeA = false, transposeB = false): tf.Tensor<R> {
  if (a.rank === 2 && (transposeA || transposeB) && materialisesTransposes()) {
    return tf.matMul(transposeA ? tf.transpose(a) : a, transposeB ? tf.transpose(b) : b) as tf.Tensor<R>;
  }
  return tf.matMul(a, b, transposeA, transposeB) as tf.Tensor<R>;
}

/** Batched op(a) @ op(b) over the leading axes of a and b (same batch shape, no broadcasting). */
export function bmm<R extends tf.Rank>(a: tf.Tensor<R>, b: tf.Tensor<R>, transposeA = false, transposeB = false): tf.Tensor<R> {
  const batch = a.shape.slice(0, -2);
  const count = batch.reduce((x, y) => x * y, 1);
  if (!materialisesTransposes() || count === 1) return tf.matMul(a, b, transposeA, transposeB) as tf.Tensor<R>;
  const as = tf.unstack(tf.reshape(a, [count, ...a.shape.slice(-2)] as number[])) as tf.Tensor2D[];
  const bs = tf.unstack(tf.reshape(b, [count, ...b.shape.slice(-2)] as number[])) as tf.Tensor2D[];
  const out = tf.stack(as.map((x, i) => mm(x, bs[i]!, transposeA, transposeB))) as tf.Tensor3D;
  return tf.reshape(out, [...batch, ...out.shape.slice(1)]) as unknown as tf.Tensor<R>;
}
