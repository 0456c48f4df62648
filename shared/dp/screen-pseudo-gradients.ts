/**
 * Screening a sync chunk (the diloco counterpart of coordinator/outliers.ts): a replica's chunk is
 * an outlier when its L2 norm is non-finite, or both `factor` times the reference and above
 * `minNorm`. The reference is the median of this chunk's norms from the group's replicas together
 * with the accepted norms of the same chunk at recent syncs (`history`): with two replicas the
 * group alone cannot say which one lies, its history can. Honest pseudo-gradients of a group
 * differ little (every replica took the same number of Adam steps from the same weights).
 */
export interface PseudoGradScreenOptions {
  factor: number;
  minNorm: number;
}

export const DEFAULT_PSEUDO_GRAD_SCREEN: PseudoGradScreenOptions = { factor: 10, minNorm: 1 };

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Indices of `norms` to reject. */
export function pseudoGradOutliers(norms: readonly number[], history: readonly number[], o: PseudoGradScreenOptions = DEFAULT_PSEUDO_GRAD_SCREEN): number[] {
  const finite = [...norms.filter((n) => Number.isFinite(n)), ...history.filter((n) => Number.isFinite(n))];
  const ref = finite.length > 0 ? median(finite) : 0;
  const out: number[] = [];
  norms.forEach((n, i) => {
    if (!Number.isFinite(n) || (n > o.minNorm && n > o.factor * ref)) out.push(i);
  });
  return out;
}
