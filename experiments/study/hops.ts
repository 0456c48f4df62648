/**
 * The price of CheckFree+'s swapped order in iteration time (docs/experiments.md, "Churn study").
 *
 * The embedding runs on stage 0 and the head on stage S-1 (docs/research.md), so a swapped
 * microbatch visits each edge stage twice: S = 4 takes 6 hops instead of 4, each hop a relay of an
 * activation (and back, of a gradient). With several microbatches in flight the extra hops overlap
 * with other microbatches' compute, so the cost is not the hops' latency itself. This prices it
 * with the swarm's own schedule (experiments/timeline.ts: 1F1B, at most S microbatches in flight,
 * the coordinator's policy): a block hop's forward takes 1, its backward 2, an embedding-only or
 * head-only hop `edgeCost` (the two are small next to a block), and each hop between two stages
 * `hopRatio` (relay seconds / block-forward seconds). The overhead is swapped / plain - 1.
 */
import { forwardPath, swapCounter } from '../../shared/schedule/paths.js';
import { simulateIteration, type IterationTiming } from '../timeline.js';

function timing(S: number, M: number, swap: boolean, edgeCost: number): IterationTiming {
  const grid = (blockCost: number) =>
    Array.from({ length: M }, (_, mb) =>
      forwardPath(swapCounter(0, M, mb), S, swap).map((h) => (h.segment.blocks ? blockCost : 0) + (h.segment.embed || h.segment.head ? edgeCost : 0)),
    );
  return { swap, tasks: { forward: grid(1), backward: grid(2) }, step: new Array<number>(S).fill(0) };
}

/** Hops per microbatch (forward) in plain and swapped order. */
export function hopsPerMicrobatch(S: number): { plain: number; swapped: number } {
  return { plain: forwardPath(0, S, true).length, swapped: forwardPath(1, S, true).length };
}

/** Iteration-time overhead of the swapped order for S stages and M microbatches. */
export function swapOverhead(S: number, M: number, hopRatio: number, edgeCost = 0.1): number {
  const run = (swap: boolean) => simulateIteration({ nStages: S, timing: timing(S, M, swap, edgeCost), hopSeconds: hopRatio }).seconds;
  return run(true) / run(false) - 1;
}
