/**
 * Poisoned-number screening: a stage whose gradient norm is non-finite, or an extreme outlier
 * against its own recent history, is quarantined before anyone steps. Extreme means both
 * `factor` times the stage's recent median and above `minNorm` in absolute terms: honest
 * gradients do spike (a freshly rebuilt stage's norms can jump 50x within a few iterations), but
 * with clipping at 1.0 and this init they stay well below `minNorm`.
 *
 * Gradients flow backwards, so a stage that inflates its gradients also inflates those of the
 * stages before it on the path. The detector therefore blames the outlier stage nearest the
 * loss (the highest index): the stages upstream of it are victims, not culprits. The whole
 * iteration is abandoned either way, so no inflated update is applied anywhere.
 *
 * The history belongs to the stage, not to the tab serving it: a tab that takes a rebuilt stage
 * is screened against it from its first iteration (starting over would give a newcomer
 * `minHistory` unscreened iterations); the absolute floor keeps a rebuilt stage's honest spikes
 * from counting as outliers.
 */
export interface Outlier {
  stage: number;
  reason: string;
}

export class NormOutlierDetector {
  private history: number[][];

  constructor(private nStages: number, readonly factor = 50, readonly minNorm = 50, readonly window = 20, readonly minHistory = 5) {
    this.history = Array.from({ length: nStages }, () => []);
  }

  private median(xs: number[]): number {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  }

  /** The stage to quarantine for these norms (index = stage; null: the stage did not run, SkipPipe), or null when all look healthy. */
  screen(norms: readonly (number | null)[]): Outlier | null {
    for (let s = this.nStages - 1; s >= 0; s--) {
      const n = norms[s];
      if (n === null || n === undefined) continue;
      if (!Number.isFinite(n)) return { stage: s, reason: `non-finite gradient norm (${n})` };
    }
    for (let s = this.nStages - 1; s >= 0; s--) {
      const h = this.history[s]!;
      if (h.length < this.minHistory || norms[s] === null || norms[s] === undefined) continue;
      const med = this.median(h);
      if (med > 0 && norms[s]! > this.factor * med && norms[s]! > this.minNorm) {
        return { stage: s, reason: `gradient norm ${norms[s]!.toExponential(2)} is ${(norms[s]! / med).toFixed(0)}x its recent median ${med.toExponential(2)}` };
      }
    }
    return null;
  }

  /** Records the norms of an iteration that was applied (a stage that did not run keeps its history). */
  accept(norms: readonly (number | null)[]): void {
    norms.forEach((n, s) => {
      if (n === null) return;
      const h = this.history[s]!;
      h.push(n);
      if (h.length > this.window) h.shift();
    });
  }
}
