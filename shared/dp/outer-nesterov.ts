/**
 * DiLoCo's outer step (Douillard et al. 2023, Algorithm 1; docs/research.md): with `synced` the
 * weights every replica of the group held at the last sync and `avg` the mean pseudo-gradient
 * (synced minus each replica's weights now), Nesterov SGD as torch.optim.SGD(nesterov=True,
 * dampening=0) computes it:
 *
 *   m      <- mu * m + avg
 *   synced <- synced - lr * (avg + mu * m)
 *
 * In plain JS on Float32Arrays, every value computed in double and stored as float32, in index
 * order: the same bytes in every tab, on every backend, and in the local trainer.
 */

export interface OuterHyper {
  /** Outer learning rate (DiLoCo: 0.7). */
  lr: number;
  /** Nesterov momentum (DiLoCo: 0.9). */
  momentum: number;
}

/** The pseudo-gradient `synced - current`, element by element, as float32. */
export function pseudoGradient(synced: Float32Array, current: Float32Array): Float32Array {
  if (synced.length !== current.length) throw new RangeError(`pseudo-gradient of ${synced.length} synced values and ${current.length} current ones`);
  const out = new Float32Array(synced.length);
  for (let i = 0; i < out.length; i++) out[i] = synced[i]! - current[i]!;
  return out;
}

/** One outer Nesterov step, in place on `synced` and `momentum` (the new synced weights). */
export function outerNesterovStep(synced: Float32Array, momentum: Float32Array, avg: Float32Array, h: OuterHyper): void {
  if (synced.length !== momentum.length || synced.length !== avg.length) {
    throw new RangeError(`outer step over ${synced.length} weights, ${momentum.length} momentum values, ${avg.length} pseudo-gradient values`);
  }
  const { lr, momentum: mu } = h;
  for (let i = 0; i < synced.length; i++) {
    const g = avg[i]!;
    momentum[i] = mu * momentum[i]! + g;
    synced[i] = synced[i]! - lr * (g + mu * momentum[i]!);
  }
}
