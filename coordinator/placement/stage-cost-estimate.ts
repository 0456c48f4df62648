/**
 * How much slower one task of each stage is than another's, learned from tabs that served more
 * than one stage (skip-edge-swapper.ts remembers each tab's measured time per task on each stage
 * it served). Model: a tab's time per task on a stage = the tab's speed factor x the stage's cost
 * factor, fitted in logs by alternating least squares. Only the `learn` stages' factors are fitted
 * (the edges: every intermediate stage runs the same blocks, so their costs are the prior's, which
 * also fixes the scale), each pulled towards its prior (the matmul parameters it runs: placement's
 * `work`). A learned stage no tab measured alongside a fixed one keeps its prior. Why: the embedding and the head cost a tab more than their parameters
 * say (a gather and its scatter-add backward, the softmax and loss over the vocabulary), so a
 * swap predicted from parameters alone can put the next fast tab on an edge only to find it no
 * faster there, and swap again.
 *
 * Pure: the same observations give the same factors.
 */

export interface TabStageTime {
  /** Any id of the tab. */
  tab: string;
  stage: number;
  /** Its measured time per task on that stage, ms (> 0). */
  ms: number;
}

/** Weight of the prior, in observations. */
export const PRIOR_WEIGHT = 0.1;

const usable = (x: number): boolean => Number.isFinite(x) && x > 0;

/** Per-stage relative cost of one task (see the module comment); `prior[s] > 0`. */
export function stageCostFactors(observations: readonly TabStageTime[], prior: readonly number[], learn: readonly number[], priorWeight = PRIOR_WEIGHT): number[] {
  const S = prior.length;
  const obs = observations.filter((o) => Number.isInteger(o.stage) && o.stage >= 0 && o.stage < S && usable(o.ms));
  const p = prior.map((x) => Math.log(usable(x) ? x : 1));
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
