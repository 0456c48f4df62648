/**
 * The failure model of the churn experiments (docs/research.md, "Failure model"; docs/experiments.md).
 *
 * Every iteration slot, every stage fails independently with probability
 *
 *   p_iter = 1 - (1 - h)^(T / 3600)
 *
 * for an hourly failure rate h and a failure-model iteration time T in seconds (`--iteration-seconds`).
 * A failure strikes at the start of the slot, before microbatch 0.
 *
 * The draws are a pure function of (seed, slot, stage): u = U[0,1) from a hash of the three, and
 * the stage fails when u < p_iter. Consequences:
 * - every strategy run with the same seed sees exactly the same failures at the same slots
 *   (a slot is one executed iteration, redone iterations after a checkpoint rollback included);
 * - the failures at a lower rate are a subset of those at a higher rate (same u, lower threshold),
 *   which makes the comparison across rates less noisy;
 * - nothing is stored: a run can ask for any slot, in any order.
 */
import { hashSeed, mulberry32 } from '../shared/model/rng.js';
import { perIterationProbability } from '../shared/recovery/failure-model.js';


/** The uniform draw of (seed, slot, stage): the same number for every strategy and every rate. */
export function failureDraw(seed: number, slot: number, stage: number): number {
  return mulberry32(hashSeed(seed, `failure:${slot}:${stage}`))();
}

/** Which stages fail at which slot, for one hourly rate. */
export class FailureSchedule {
  readonly probability: number;

  constructor(
    readonly seed: number,
    readonly nStages: number,
    readonly hourly: number,
    readonly iterationSeconds: number,
  ) {
    if (!Number.isInteger(nStages) || nStages < 1) throw new RangeError(`nStages must be an integer >= 1, got ${nStages}`);
    if (!Number.isInteger(seed)) throw new RangeError(`failure seed must be an integer, got ${seed}`);
    this.probability = perIterationProbability(hourly, iterationSeconds);
  }

  /** The stages (ascending) that fail at the start of slot `slot`. */
  failuresAt(slot: number): number[] {
    if (!Number.isInteger(slot) || slot < 0) throw new RangeError(`slot must be an integer >= 0, got ${slot}`);
    if (this.probability === 0) return [];
    const out: number[] = [];
    for (let s = 0; s < this.nStages; s++) if (failureDraw(this.seed, slot, s) < this.probability) out.push(s);
    return out;
  }

  /** Every failure in slots [0, slots): one entry per failed stage. */
  failuresUpTo(slots: number): { slot: number; stage: number }[] {
    const out: { slot: number; stage: number }[] = [];
    for (let t = 0; t < slots; t++) for (const stage of this.failuresAt(t)) out.push({ slot: t, stage });
    return out;
  }

  /** Expected number of stage failures in `slots` slots. */
  expectedFailures(slots: number): number {
    return slots * this.nStages * this.probability;
  }
}
