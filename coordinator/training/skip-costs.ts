/**
 * The stage costs the collision-aware skip scheduler decides over (shared/schedule/skip-timing.ts
 * StageCosts), from what the coordinator measures: each replica group's time per task
 * (tab-speed.ts groupTaskMs: 1 / sum of 1 / replica time) as the forward time, the backward
 * twice that (the tabs report one task time for both directions), and a link from stage a to
 * stage b half of the two stages' measured hop round trips averaged (in-flight-window.ts
 * HopTimes). A stage nobody measured yet (or nobody serves) counts as the median of the measured
 * ones, or 1 ms when none is: the schedule is then what equal stages give.
 */
import type { StageCosts } from '../../shared/schedule/skip-timing.js';

export interface MeasuredStage {
  /** The group's time per task, ms (null: not measured, Infinity or non-finite: nobody serves it). */
  taskMs: number | null;
  /** The stage's hop round trip outside compute, ms (null: not measured). */
  hopMs: number | null;
}

function medianOf(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const usable = (x: number | null): x is number => x !== null && Number.isFinite(x) && x >= 0;

/** StageCosts from per-stage measurements (see the module comment). */
export function measuredStageCosts(stages: readonly MeasuredStage[]): StageCosts {
  const typicalTask = medianOf(stages.map((s) => s.taskMs).filter(usable)) ?? 1;
  const typicalHop = medianOf(stages.map((s) => s.hopMs).filter(usable)) ?? 0;
  const forwardMs = stages.map((s) => (usable(s.taskMs) && s.taskMs > 0 ? s.taskMs : typicalTask));
  const hop = stages.map((s) => (usable(s.hopMs) ? s.hopMs : typicalHop));
  return {
    forwardMs,
    backwardMs: forwardMs.map((f) => 2 * f),
    linkMs: hop.map((a, i) => hop.map((b, j) => (i === j ? 0 : (a + b) / 4))),
  };
}
