/**
 * Speed-aware placement for SkipPipe (issue 24, docs/skippipe.md "Fast tabs on the edges"): with
 * `--skip-ratio r > 0` every microbatch's path runs stage 0 and stage S-1 (embedding, head, loss)
 * while an intermediate stage runs only its share of the M x (visit - 2) intermediate visits
 * (about (1 - r) of them; with the collision-aware schedule, a share that follows its speed). So
 * the edges' tabs bound the iteration, and the swarm should put its fastest tabs there.
 *
 * Pure functions over measured numbers (placement reads them from tab-speed.ts):
 * - `skipStageLoads`: each stage's microbatches per iteration under the schedule's bounds;
 * - `stageBusyMs`: each stage's busy time per iteration (load x time per task);
 * - `planEdgeSwap`: the swap of one edge stage's tab with one intermediate stage's tab that cuts
 *   the busiest stage's time most (plans within EDGE_SWAP_TIE of it tie: the one that puts the
 *   faster tab on the last stage, `lastStageMs`, then the least total busy time), if by at least EDGE_SWAP_GAIN (placement then moves each tab's
 *   state to the other, between iterations, as a rebalance move does).
 *
 * Only stages served by exactly one tab take part in swaps (with replicas, a newcomer's join
 * already weighs the groups by `skipStageLoads`, see placement.ts `bottleneck`).
 */
import { coverage, type SkipRules } from '../../shared/schedule/skip-paths.js';
import { speedCoverage } from '../../shared/schedule/skip-speed-coverage.js';

/** A swap must cut the busiest stage's time per iteration by at least this fraction. */
export const EDGE_SWAP_GAIN = 0.2;
/** Plans whose busiest stage is within this fraction of the best plan's count as tied (see planEdgeSwap). */
export const EDGE_SWAP_TIE = 0.05;
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
  /** The second swap of a two-swap plan (afterMs predicts both). */
  then?: { edge: number; intermediate: number };
}

const usable = (x: number | null | undefined): x is number => typeof x === 'number' && Number.isFinite(x) && x > 0;

/**
 * Per stage, the microbatches it runs in one iteration (stages 0 and S-1: all M). Without speeds
 * (the random schedule: seeded quotas between the equal floor and cap) the mean share
 * M x (visit - 2) / open stages; with speeds (the collision-aware schedule) each stage's
 * speed-following floor, the spare visits one by one to the fastest stages below their cap, as
 * that schedule hands them out.
 */
export function skipStageLoads(rules: SkipRules, microbatches: number, taskMs?: readonly (number | null)[]): number[] {
  const S = rules.nStages;
  const open: number[] = [];
  for (let s = 1; s < S - 1; s++) if (!rules.vacant.includes(s)) open.push(s);
  const total = microbatches * Math.max(0, rules.visit - 2);
  if (!taskMs) return coverage(rules, microbatches).cap.map((c, s) => (open.includes(s) ? total / open.length : c));
  const { floor, cap } = speedCoverage(rules, microbatches, taskMs.map((t) => (usable(t) ? 1 / t : NaN)));
  const load = [...floor];
  const fastest = [...open].sort((a, b) => (usable(taskMs[a]) ? taskMs[a]! : Infinity) - (usable(taskMs[b]) ? taskMs[b]! : Infinity) || a - b);
  let spare = total - open.reduce((n, s) => n + floor[s]!, 0);
  while (spare > 0) {
    const s = fastest.find((x) => load[x]! < cap[x]!);
    if (s === undefined) break;
    load[s]!++;
    spare--;
  }
  return load;
}

/** Per stage, microbatches x time per task (NaN where the time is unknown). */
export function stageBusyMs(loads: readonly number[], taskMs: readonly (number | null)[]): number[] {
  return loads.map((n, s) => (n === 0 ? 0 : usable(taskMs[s]) ? n * taskMs[s]! : NaN));
}

/** The busiest stage's time per iteration, and the stages' total (the tie-break). */
function busiest(input: EdgeSwapInput, taskMs: readonly (number | null)[]): { max: number; sum: number } {
  const loads = skipStageLoads(input.rules, input.microbatches, input.followSpeed ? taskMs : undefined);
  const busy = stageBusyMs(loads, taskMs).filter((x) => !Number.isNaN(x));
  return { max: Math.max(...busy), sum: busy.reduce((a, b) => a + b, 0) };
}

/** `tabMs` with the tabs of stages a and b traded, each scaled by the other stage's cost per task. */
function traded(tabMs: readonly (number | null)[], work: readonly number[], a: number, b: number): (number | null)[] {
  const ta = tabMs[a]!;
  const tb = tabMs[b]!;
  return tabMs.map((t, s) => (s === a ? tb * (work[a]! / work[b]!) : s === b ? ta * (work[b]! / work[a]!) : t));
}

/**
 * The best swap of an edge stage's tab with an intermediate's (see the module comment), or null
 * when none cuts the busiest stage's time by `minGain`, or some open stage is not measured. When
 * both edges are slow one swap may not lift the busiest stage enough while two would: plans of one
 * swap per edge are weighed too, and the first of the best such pair is returned (`afterMs` then
 * predicts both, `then` names the second; the next step decides it again on new measurements).
 */
export function planEdgeSwap(input: EdgeSwapInput, minGain = EDGE_SWAP_GAIN): EdgeSwap | null {
  const { rules, tabMs, work } = input;
  const S = rules.nStages;
  if (S < 3 || rules.visit >= S || tabMs.length !== S || work.length !== S || !work.every(usable)) return null;
  const open = (s: number) => !rules.vacant.includes(s);
  for (let s = 0; s < S; s++) if (open(s) && !usable(tabMs[s])) return null;
  const before = busiest(input, tabMs).max;
  if (!Number.isFinite(before)) return null;
  // Every plan that cuts the busiest stage enough, with its total busy time and its last stage's
  // estimate (lastStageMs); the choice among them is made at the end.
  const plans: { p: EdgeSwap; sum: number; last: number }[] = [];
  const consider = (p: EdgeSwap, placed: readonly (number | null)[], sum: number) => {
    if (p.afterMs <= (1 - minGain) * before) plans.push({ p, sum, last: lastStageMs(input, placed) });
  };
  const single = new Map<string, number>();
  for (const edge of [0, S - 1]) {
    for (let i = 1; i < S - 1; i++) {
      if (!open(i)) continue;
      const placed = traded(tabMs, work, edge, i);
      const { max, sum } = busiest(input, placed);
      single.set(`${edge}:${i}`, max);
      consider({ edge, intermediate: i, beforeMs: before, afterMs: max }, placed, sum);
    }
  }
  const bestSingle = Math.min(...plans.map((x) => x.p.afterMs));
  for (let i = 1; i < S - 1; i++) {
    for (let j = 1; j < S - 1; j++) {
      if (i === j || !open(i) || !open(j)) continue;
      const placed = traded(traded(tabMs, work, 0, i), work, S - 1, j);
      const { max, sum } = busiest(input, placed);
      // The swap that helps more on its own goes first.
      const firstIsZero = single.get(`0:${i}`)! <= single.get(`${S - 1}:${j}`)!;
      const [a, b] = firstIsZero ? [{ edge: 0, intermediate: i }, { edge: S - 1, intermediate: j }] : [{ edge: S - 1, intermediate: j }, { edge: 0, intermediate: i }];
      // A pair must beat the best single plan clearly to be preferred (it takes two moves).
      if (max >= (1 - minGain / 2) * bestSingle) continue;
      consider({ ...a, beforeMs: before, afterMs: max, then: b }, placed, sum);
    }
  }
  if (plans.length === 0) return null;
  // Among the plans within EDGE_SWAP_TIE of the least busiest stage, the one whose last stage
  // finishes first (the faster tab on stage S-1), then the least busiest stage, then the least total.
  const least = Math.min(...plans.map((x) => x.p.afterMs));
  const near = plans.filter((x) => x.p.afterMs <= (1 + EDGE_SWAP_TIE) * least);
  near.sort((x, y) => x.last - y.last || x.p.afterMs - y.p.afterMs || x.sum - y.sum);
  return near[0]!.p;
}

/**
 * The last stage's busy time per iteration plus the pipeline's fill and drain in front of it, in
 * stageBusyMs's units (load x time per task; a task time averages a forward and a backward, 2x):
 * its first forward waits for stage 0's and the path's intermediates' forwards, and its last
 * backward still has to run back through them, together 3 forward times each, i.e. 2 task times,
 * i.e. 1 x time per task in these units (which count half an iteration's tasks). The intermediates
 * on that path are taken as the fastest open ones. Stage 0 starts at once and ends with its own
 * backward, so the faster of two edge tabs belongs on stage S-1 (measured, bench:skip-swarm seed 1:
 * 0.56x with the 40 ms tab on stage 7 and the 62 ms one on stage 0, 0.63x the other way round).
 */
export function lastStageMs(input: EdgeSwapInput, taskMs: readonly (number | null)[]): number {
  const { rules } = input;
  const S = rules.nStages;
  const loads = skipStageLoads(rules, input.microbatches, input.followSpeed ? taskMs : undefined);
  const mids: number[] = [];
  for (let s = 1; s < S - 1; s++) if (!rules.vacant.includes(s) && usable(taskMs[s])) mids.push(taskMs[s]!);
  mids.sort((a, b) => a - b);
  const path = mids.slice(0, Math.max(0, rules.visit - 2)).reduce((a, b) => a + b, 0);
  const t0 = usable(taskMs[0]) ? taskMs[0]! : NaN;
  const tl = usable(taskMs[S - 1]) ? taskMs[S - 1]! : NaN;
  return loads[S - 1]! * tl + t0 + path;
}
