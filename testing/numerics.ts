/** Comparing numbers against a reference in tests. */

/** The largest absolute difference between `a` and the reference `b`, relative to `b`'s largest magnitude. */
export function maxRelErr(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 1e-12;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}
