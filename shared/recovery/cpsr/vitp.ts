/**
 * VITP, the variable-interval temporal predictor (CPSR slides): a small network that maps a
 * parameter's denoised recent motion and the window's times to its displacement over a horizon h:
 *
 *   e     = tanh(time @ Wt + bt)                       time embedding (h, log h, the window's gaps)
 *   a     = relu([value, e] @ W1 + b1); a = relu(a @ W2 + b2)
 *   y     = h * (value @ Ws + a @ W3 + b3)             displacement in units of the chunk's scale
 *
 * The factor h makes a zero horizon predict no move whatever the weights, and the linear skip
 * (Ws) makes "keep the denoised velocity" the easy first thing to learn; the embedding lets the
 * rest bend with unequal intervals. A few thousand parameters (about 2 k floats at the defaults),
 * trained with Adam on whatever tfjs backend is active (wasm in Node, a tab's own in a browser).
 */
import * as tf from '../../model/tf.js';
import { normalArray } from '../../model/rng.js';
import { timeFeatureCount, valueFeatureCount, type FeatureRows } from './windows.js';

export interface VitpShape {
  window: number;
  hidden: number;
  timeDim: number;
}

export class Vitp {
  private readonly vars: tf.Variable[];
  private readonly w: Record<'wt' | 'bt' | 'w1' | 'b1' | 'w2' | 'b2' | 'w3' | 'b3' | 'ws', tf.Variable>;

  constructor(readonly shape: VitpShape, seed: number) {
    const fv = valueFeatureCount(shape.window);
    const ft = timeFeatureCount(shape.window);
    const { hidden: H, timeDim: E } = shape;
    let k = 0;
    const glorot = (fanIn: number, fanOut: number) => tf.variable(tf.tensor2d(normalArray(fanIn * fanOut, Math.sqrt(2 / (fanIn + fanOut)), seed + ++k), [fanIn, fanOut]));
    const zeros = (r: number, c: number) => tf.variable(tf.zeros([r, c]));
    this.w = {
      wt: glorot(ft, E),
      bt: zeros(1, E),
      w1: glorot(fv + E, H),
      b1: zeros(1, H),
      w2: glorot(H, H),
      b2: zeros(1, H),
      w3: zeros(H, 1),
      b3: zeros(1, 1),
      ws: zeros(fv, 1),
    };
    this.vars = Object.values(this.w);
  }

  /** Floats in the model. */
  get size(): number {
    return this.vars.reduce((a, v) => a + v.size, 0);
  }

  private forward(value: tf.Tensor2D, time: tf.Tensor2D, h: tf.Tensor2D): tf.Tensor2D {
    const { w } = this;
    const e = tf.tanh(tf.add(tf.matMul(time, w.wt), w.bt));
    let a = tf.relu(tf.add(tf.matMul(tf.concat([value, e], 1), w.w1), w.b1));
    a = tf.relu(tf.add(tf.matMul(a, w.w2), w.b2));
    const out = tf.add(tf.add(tf.matMul(value, w.ws), tf.matMul(a, w.w3)), w.b3);
    return tf.mul(out, h) as tf.Tensor2D;
  }

  /**
   * Trains `steps` Adam steps on minibatches of `batch` rows drawn with `rand` from (rows, y);
   * returns the mean squared error of the last steps.
   */
  train(rows: FeatureRows, y: Float32Array, opts: { steps: number; batch: number; lr: number; rand: () => number }): number {
    const fv = valueFeatureCount(this.shape.window);
    const ft = timeFeatureCount(this.shape.window);
    const optimizer = tf.train.adam(opts.lr);
    const V = tf.tensor2d(rows.value, [rows.n, fv]);
    const T = tf.tensor2d(rows.time, [rows.n, ft]);
    const Hh = tf.tensor2d(rows.h, [rows.n, 1]);
    const Y = tf.tensor2d(y, [rows.n, 1]);
    let recent = 0;
    let counted = 0;
    try {
      for (let s = 0; s < opts.steps; s++) {
        const idx = tf.tensor1d(Int32Array.from({ length: Math.min(opts.batch, rows.n) }, () => Math.floor(opts.rand() * rows.n)), 'int32');
        const cost = optimizer.minimize(
          () =>
            tf.tidy(() => {
              const pred = this.forward(tf.gather(V, idx) as tf.Tensor2D, tf.gather(T, idx) as tf.Tensor2D, tf.gather(Hh, idx) as tf.Tensor2D);
              return tf.mean(tf.square(tf.sub(pred, tf.gather(Y, idx)))) as tf.Scalar;
            }),
          true,
          this.vars,
        );
        idx.dispose();
        if (s >= opts.steps - 10) {
          recent += (cost!.dataSync() as Float32Array)[0]!;
          counted++;
        }
        cost?.dispose();
      }
    } finally {
      [V, T, Hh, Y].forEach((t) => t.dispose());
      optimizer.dispose();
    }
    return counted ? recent / counted : NaN;
  }

  /** Predicted normalised displacement for every row. */
  predict(rows: FeatureRows): Float32Array {
    const fv = valueFeatureCount(this.shape.window);
    const ft = timeFeatureCount(this.shape.window);
    const out = tf.tidy(() => this.forward(tf.tensor2d(rows.value, [rows.n, fv]), tf.tensor2d(rows.time, [rows.n, ft]), tf.tensor2d(rows.h, [rows.n, 1])));
    const y = (out.dataSync() as Float32Array).slice();
    out.dispose();
    return y;
  }

  dispose(): void {
    this.vars.forEach((v) => v.dispose());
  }
}
