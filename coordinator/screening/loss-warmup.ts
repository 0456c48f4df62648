/**
 * Warm-up of the relay-norm screen (issue 22, item 3): while the training loss falls fast, honest
 * activations and gradients move by orders of magnitude between iterations (small batches, early
 * training), so the threshold of the relay `jump` rule (the one no gradient outlier backs) is
 * widened by `factor` until the loss settles; `upstream` blame keeps its threshold (a 1e4
 * inflation early in a run is only ~2,400x a spread history whose threshold is ~2,000x). "Falls fast":
 * fewer than 2 x `window` losses seen yet, or the mean of the last `window` losses is more than
 * `drop` (relative) below the mean of the `window` before them. A pure rule over measured
 * losses; relay-norms.ts `screen(excused, widen)` applies it.
 */
export interface WarmupRule {
  window: number;
  /** Relative fall of the windowed mean loss that still counts as warm-up. */
  drop: number;
  /** Threshold multiplier during warm-up. */
  factor: number;
}

export const DEFAULT_WARMUP: WarmupRule = { window: 10, drop: 0.05, factor: 2 };

/** Whether `losses` (oldest first) are still falling fast by `rule`. */
export function lossFallingFast(losses: readonly number[], rule: WarmupRule = DEFAULT_WARMUP): boolean {
  const w = rule.window;
  const ok = losses.filter(Number.isFinite);
  if (ok.length < 2 * w) return true;
  const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const before = mean(ok.slice(-2 * w, -w));
  const last = mean(ok.slice(-w));
  return before > 0 && (before - last) / before > rule.drop;
}

export class LossWarmup {
  private losses: number[] = [];

  constructor(readonly rule: WarmupRule = DEFAULT_WARMUP) {}

  /** The mean loss of an applied iteration. */
  record(loss: number): void {
    this.losses.push(loss);
    if (this.losses.length > 2 * this.rule.window) this.losses.shift();
  }

  /** The multiplier on every relay threshold now: `rule.factor` while the loss falls fast, else 1. */
  factor(): number {
    return lossFallingFast(this.losses, this.rule) ? this.rule.factor : 1;
  }
}
