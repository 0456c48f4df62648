/**
 * Adam (betas 0.9/0.999, eps 1e-8, no weight decay) over named tensors, with the state exposed so
 * that recovery can start a fresh optimizer and the checkpoint baseline can save and restore it.
 */
import * as tf from './tf.js';

export interface AdamState {
  step: number;
  m: Map<string, tf.Tensor>;
  v: Map<string, tf.Tensor>;
}

export const ADAM_BETA1 = 0.9;
export const ADAM_BETA2 = 0.999;
export const ADAM_EPS = 1e-8;

export function freshAdamState(): AdamState {
  return { step: 0, m: new Map(), v: new Map() };
}

export function disposeAdamState(s: AdamState): void {
  for (const t of s.m.values()) t.dispose();
  for (const t of s.v.values()) t.dispose();
  s.m.clear();
  s.v.clear();
}

/**
 * One Adam update. `params` is mutated to hold the new tensors (old ones are disposed);
 * `grads` is read, not disposed.
 */
export function adamStep(params: Map<string, tf.Tensor>, grads: Map<string, tf.Tensor>, state: AdamState, lr: number): void {
  state.step += 1;
  const bc1 = 1 - Math.pow(ADAM_BETA1, state.step);
  const bc2 = 1 - Math.pow(ADAM_BETA2, state.step);
  for (const [name, p] of params) {
    const g = grads.get(name);
    if (!g) continue;
    const mOld = state.m.get(name);
    const vOld = state.v.get(name);
    const [m, v, next] = tf.tidy(() => {
      const m = mOld ? tf.add(tf.mul(mOld, ADAM_BETA1), tf.mul(g, 1 - ADAM_BETA1)) : tf.mul(g, 1 - ADAM_BETA1);
      const v = vOld
        ? tf.add(tf.mul(vOld, ADAM_BETA2), tf.mul(tf.square(g), 1 - ADAM_BETA2))
        : tf.mul(tf.square(g), 1 - ADAM_BETA2);
      const update = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(v, bc2)), ADAM_EPS));
      return [m, v, tf.sub(p, tf.mul(update, lr))];
    });
    mOld?.dispose();
    vOld?.dispose();
    p.dispose();
    state.m.set(name, m);
    state.v.set(name, v);
    params.set(name, next);
  }
}
