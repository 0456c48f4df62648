/**
 * How much slower one task of each stage is than another's, learned from tabs that served more
 * than one stage (skip-edge-swapper.ts remembers each tab's measured time per task on each stage
 * it served). Model: a tab's time per task on a stage = the tab's speed factor x the stage's cost
 * factor, fitted in logs by alternating least squares. Only the `learn` stages' factors are fitted
 * (the edges: every intermediate stage runs the same blocks, so their costs are the prior's, which
 * also fixes the scale), each pulled towards its prior (the matmul parameters it runs: placement's
 * `work`). Why: the embedding and the head cost a tab more than their parameters
 * say (a gather and its scatter-add backward, the softmax and loss over the vocabulary), so a
 * swap predicted from parameters alone can put the next fast tab on an edge only to find it no
 * faster there, and swap again.
 *
 * A learned stage no tab measured alongside another stage (*unlinked*: before the first swap) is
 * undecided between a slow tab and a costly stage: its tabs' excess (in logs) over the typical tab
 * (the median, per unit of prior cost, of the observations on fixed stages) is split,
 * UNLINKED_STAGE_SHARE of it to the stage. Before, all of it went to the tab, so in a swarm of
 * equal tabs the first decision saw the edge's extra cost as a slow tab and made one needless
 * swap; now equal tabs swap only if an edge costs over 1 / (1 - EDGE_SWAP_GAIN)^2 = 1.56x a
 * middle stage, and a truly slow edge tab is still swapped out when it is that much slower than
 * the typical tab (or some tab is much faster than the typical one).
 *
 * Pure: the same observations give the same factors.
 */
import { median } from '../tabs/tab-speed.js';

export interface TabStageTime {
  /** Any id of the tab. */
  tab: string;
  stage: number;
  /** Its measured time per task on that stage, ms (> 0). */
  ms: number;
}

/** Weight of the prior, in observations. */
export const PRIOR_WEIGHT = 0.1;
/** Share of an unlinked learned stage's excess over the typical tab put on the stage (see the module comment). */
export const UNLINKED_STAGE_SHARE = 0.5;

const usable = (x: number): boolean => Number.isFinite(x) && x > 0;

/** Per-stage relative cost of one task (see the module comment); `prior[s] > 0`. */
export function stageCostFactors(observations: readonly TabStageTime[], prior: readonly number[], learn: readonly number[], priorWeight = PRIOR_WEIGHT): number[] {
  const S = prior.length;
  const obs = observations.filter((o) => Number.isInteger(o.stage) && o.stage >= 0 && o.stage < S && usable(o.ms));
  const p = unlinkedShift(obs, prior.map((x) => Math.log(usable(x) ? x : 1)), learn);
  const c = [...p];
  const tabs = [...new Set(obs.map((o) => o.tab))];
  const a = new Map<string, number>();
  for (let iter = 0; iter < 100; iter++) {
    for (const t of tabs) {
      const mine = obs.filter((o) => o.tab === t);
      a.set(t, mine.reduce((n, o) => n + Math.log(o.ms) - c[o.stage]!, 0) / mine.length);
    }
    for (const s of learn) {
      if (!(s >= 0 && s < S)) continue;
      const here = obs.filter((o) => o.stage === s);
      c[s] = (priorWeight * p[s]! + here.reduce((n, o) => n + Math.log(o.ms) - a.get(o.tab)!, 0)) / (priorWeight + here.length);
    }
  }
  return c.map(Math.exp);
}

/**
 * Log priors with each unlinked learned stage's moved by UNLINKED_STAGE_SHARE of its tabs' mean
 * excess over the typical tab (the median of log ms - log prior over observations on stages not
 * learned); unchanged where a stage is linked, unobserved, or no fixed stage is observed.
 */
function unlinkedShift(obs: readonly TabStageTime[], p: readonly number[], learn: readonly number[]): number[] {
  const out = [...p];
  const fixed = obs.filter((o) => !learn.includes(o.stage)).map((o) => Math.log(o.ms) - p[o.stage]!);
  if (fixed.length === 0) return out;
  const typical = median(fixed)!;
  for (const s of learn) {
    if (!(s >= 0 && s < p.length)) continue;
    const here = obs.filter((o) => o.stage === s);
    if (here.length === 0) continue;
    const linked = here.some((o) => obs.some((x) => x.tab === o.tab && x.stage !== s));
    if (linked) continue;
    const excess = here.reduce((n, o) => n + Math.log(o.ms) - p[s]!, 0) / here.length - typical;
    out[s] = p[s]! + UNLINKED_STAGE_SHARE * excess;
  }
  return out;
}
