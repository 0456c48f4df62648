/**
 * Matrix products as fast as the current backend allows. tfjs's wasm backend hands a 2-D product
 * to XNNPACK only when neither operand is transposed: with a transpose flag the same
 * [512,128] x [128,512] product ran at 1.7 GFLOP/s instead of 18-25 here (`npm run bench:compute`
 * prints both). So on wasm a 2-D transpose is materialised first (a copy costs far less than
 * the slow product); WebGPU, WebGL and cpu read transposed operands in the kernel itself, and
 * batched products (rank > 2) are slow on wasm either way, so they keep the flags.
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
