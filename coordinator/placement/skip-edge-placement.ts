/**
 * Speed-aware placement for SkipPipe (issue 24, docs/skippipe.md "Fast tabs on the edges"): with
 * `--skip-ratio r > 0` every microbatch's path runs stage 0 and stage S-1 (embedding, head, loss)
 * while an intermediate stage runs only its share of the M x (visit - 2) intermediate visits
 * (about (1 - r) of them; with the collision-aware schedule, a share that follows its speed). So
 * the edges' tabs bound the iteration, and the swarm should put its fastest tabs there.
 *
 * Pure functions over measured numbers (placement reads them from tab-speed.ts):
 * - `skipStageLoads`: each stage's microbatches per iteration under the schedule's caps;
 * - `stageBusyMs`: each stage's busy time per iteration (load x time per task);
 * - `planEdgeSwap`: the swap of one edge stage's tab with one intermediate stage's tab that cuts
 *   the busiest stage's time most, if by at least EDGE_SWAP_GAIN (placement then moves each tab's
 *   state to the other, between iterations, as a rebalance move does).
 *
 * Only stages served by exactly one tab take part in swaps (with replicas, a newcomer's join
 * already weighs the groups by `skipStageLoads`, see placement.ts `bottleneck`).
 */
import { coverage, type SkipRules } from '../../shared/schedule/skip-paths.js';
import { speedCoverage } from '../../shared/schedule/skip-speed-coverage.js';

/** A swap must cut the busiest stage's time per iteration by at least this fraction. */
export const EDGE_SWAP_GAIN = 0.2;
/** At most one edge swap every this many iterations (the moved tabs are measured again meanwhile). */
export const EDGE_SWAP_MIN_GAP = 2;

export interface EdgeSwapInput {
  /** The run's skip rules now (skip-paths.ts skipRules, with its vacant stages). */
  rules: SkipRules;
  microbatches: number;
  /**
   * Per stage: the measured time per task of the one tab serving it, ms; null where it is not
   * measured, not finite or positive, or the stage has no tab or several (such stages never swap).
   */
  tabMs: readonly (number | null)[];
  /** Relative work of one task of each stage (> 0): a tab's time moves with it in proportion. */
  work: readonly number[];
  /** True for the collision-aware schedule, whose intermediate caps follow measured speed. */
  followSpeed: boolean;
}

export interface EdgeSwap {
  /** Stage 0 or S-1. */
  edge: number;
  intermediate: number;
  /** The busiest stage's predicted time per iteration before and after the swap (load x ms per task). */
  beforeMs: number;
  afterMs: number;
}

const usable = (x: number | null | undefined): x is number => typeof x === 'number' && Number.isFinite(x) && x > 0;

/** Per stage, the most microbatches it runs in one iteration under the schedule's caps (stages 0 and S-1: all M). */
export function skipStageLoads(rules: SkipRules, microbatches: number, taskMs?: readonly (number | null)[]): number[] {
  const speed = taskMs?.map((t) => (usable(t) ? 1 / t : NaN));
  return (speed ? speedCoverage(rules, microbatches, speed) : coverage(rules, microbatches)).cap;
}

/** Per stage, microbatches x time per task (NaN where the time is unknown). */
export function stageBusyMs(loads: readonly number[], taskMs: readonly (number | null)[]): number[] {
  return loads.map((n, s) => (n === 0 ? 0 : usable(taskMs[s]) ? n * taskMs[s]! : NaN));
}

function busiest(input: EdgeSwapInput, taskMs: readonly (number | null)[]): number {
  const loads = skipStageLoads(input.rules, input.microbatches, input.followSpeed ? taskMs : undefined);
  return Math.max(...stageBusyMs(loads, taskMs).filter((x) => !Number.isNaN(x)));
}

/**
 * The best swap of an edge stage's tab with an intermediate's (see the module comment), or null
 * when none cuts the busiest stage's time by `minGain`, or some open stage is not measured.
 */
export function planEdgeSwap(input: EdgeSwapInput, minGain = EDGE_SWAP_GAIN): EdgeSwap | null {
  const { rules, tabMs, work } = input;
  const S = rules.nStages;
  if (S < 3 || rules.visit >= S || tabMs.length !== S || work.length !== S || !work.every(usable)) return null;
  const open = (s: number) => !rules.vacant.includes(s);
  for (let s = 0; s < S; s++) if (open(s) && !usable(tabMs[s])) return null;
  const before = busiest(input, tabMs);
  if (!Number.isFinite(before)) return null;
  let best: EdgeSwap | null = null;
  for (const edge of [0, S - 1]) {
    for (let i = 1; i < S - 1; i++) {
      if (!open(i)) continue;
      const te = tabMs[edge]!;
      const ti = tabMs[i]!;
      // Each tab's time per task on the other stage, scaled by how much work a task there is.
      const swapped = tabMs.map((t, s) => (s === edge ? ti * (work[edge]! / work[i]!) : s === i ? te * (work[i]! / work[edge]!) : t));
      const after = busiest(input, swapped);
      if (after <= (1 - minGain) * before && (!best || after < best.afterMs)) best = { edge, intermediate: i, beforeMs: before, afterMs: after };
    }
  }
  return best;
}
