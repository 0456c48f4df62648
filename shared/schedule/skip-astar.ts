/**
 * A* for one microbatch's skip path (the low level of the collision-aware scheduler, as the
 * reference's a_star_modified): the legal block order (skip-paths.ts rules, plus this
 * microbatch's forbidden and required stages) whose forward pass, waiting wherever an earlier
 * microbatch's forward already holds a stage (`reservations`: the time collisions), and backward
 * pass finish soonest.
 *
 * A partial path's cost g is when its last forward task ends (links and waits included) plus the
 * backward time of the stages it holds (their backward tasks and the links back); the heuristic
 * adds, for the stages still to visit, the smallest forward + backward times among the stages that
 * may still be visited, so it never overestimates and the first complete path popped is the best.
 * The search is bounded by `maxExpansions`; past it the best complete path found so far is
 * returned (null if none).
 */
import { MinHeap } from './min-heap.js';
import { checkPath, type SkipRules } from './skip-paths.js';
import { EDGE_HOP_FRACTION, type StageCosts } from './skip-timing.js';

/** A stage held by a forward task from `start` to `end` (ms). */
export interface Interval {
  start: number;
  end: number;
}

export interface AStarQuery {
  rules: SkipRules;
  costs: StageCosts;
  /** Stages this microbatch may not visit (the search's cap conflicts). */
  forbidden: ReadonlySet<number>;
  /** Stages this microbatch must visit (CheckFree+'s partners, the search's floor conflicts). */
  required: ReadonlySet<number>;
  /** No swaps (a CheckFree+ microbatch: its own pairs are swapped afterwards). */
  inOrder: boolean;
  /** Per stage, the forward intervals earlier microbatches hold, sorted by start. */
  reservations: readonly (readonly Interval[])[];
  /** What the found order becomes before the rules judge it (CheckFree+'s pair swap); default identity. */
  transform?: (order: number[]) => number[];
  /** Per stage, a small key that breaks ties between equally fast paths (seeded). */
  tieBreak: readonly number[];
  maxExpansions: number;
}

export interface AStarResult {
  order: number[];
  /** Forward finish + backward time (ms from the iteration's start). */
  costMs: number;
  expansions: number;
}

/** The earliest start >= `from` of a task of `duration` ms on a stage holding `busy`. */
export function earliestFree(busy: readonly Interval[], from: number, duration: number): number {
  let t = from;
  for (const iv of busy) {
    if (iv.end <= t) continue;
    if (iv.start >= t + duration) break;
    t = iv.end;
  }
  return t;
}

/**
 * The tasks of `order`, forward then backward (stage, start, end, dir), when it starts at 0 and
 * waits wherever `reservations` hold a stage: what an earlier microbatch reserves for later ones.
 */
export function timeRoundTrip(order: readonly number[], nStages: number, costs: StageCosts, reservations: readonly (readonly Interval[])[]): { stage: number; start: number; end: number; dir: 'F' | 'B'; wait: number }[] {
  const hops: { stage: number; blocks: boolean }[] = [];
  if (order[0] !== 0) hops.push({ stage: 0, blocks: false });
  for (const s of order) hops.push({ stage: s, blocks: true });
  if (order[order.length - 1] !== nStages - 1) hops.push({ stage: nStages - 1, blocks: false });
  const out: { stage: number; start: number; end: number; dir: 'F' | 'B'; wait: number }[] = [];
  let at = hops[0]!.stage;
  let t = 0;
  const run = (hop: { stage: number; blocks: boolean }, dir: 'F' | 'B') => {
    const full = (dir === 'F' ? costs.forwardMs : costs.backwardMs)[hop.stage]!;
    const ms = hop.blocks ? full : full * EDGE_HOP_FRACTION;
    const arrive = t + (hop.stage === at ? 0 : costs.linkMs[at]![hop.stage]!);
    const start = earliestFree(reservations[hop.stage] ?? [], arrive, ms);
    out.push({ stage: hop.stage, start, end: start + ms, dir, wait: start - arrive });
    at = hop.stage;
    t = start + ms;
  };
  for (const h of hops) run(h, 'F');
  for (const h of [...hops].reverse()) run(h, 'B');
  return out;
}

interface Node {
  order: number[];
  mask: number;
  at: number;
  frontier: number;
  swaps: number;
  /** When the last forward task ended. */
  t: number;
  /** Backward time of the stages held so far. */
  back: number;
  f: number;
  tie: number;
  done: boolean;
}

/** The best legal path for one microbatch under `q`, or null when none exists within the bound. */
export function planPath(q: AStarQuery): AStarResult | null {
  const { rules, costs } = q;
  const S = rules.nStages;
  if (S > 50) throw new RangeError('planPath supports at most 50 stages');
  const F = costs.forwardMs;
  const B = costs.backwardMs;
  const link = costs.linkMs;
  const allowed = (s: number) => !q.forbidden.has(s) && !rules.vacant.includes(s);
  const must = [0, S - 1, ...q.required];
  const bit = (s: number) => 2 ** s;
  const has = (mask: number, s: number) => Math.floor(mask / bit(s)) % 2 === 1;

  const heuristic = (n: Node): number => {
    const left = rules.visit - n.order.length;
    if (left <= 0) return 0;
    const costsLeft: number[] = [];
    for (let s = 0; s < S; s++) if (!has(n.mask, s) && allowed(s)) costsLeft.push(F[s]! + B[s]!);
    costsLeft.sort((a, b) => a - b);
    return costsLeft.slice(0, left).reduce((a, b) => a + b, 0);
  };
  const heap = new MinHeap<Node>((a, b) => a.f < b.f || (a.f === b.f && (a.done !== b.done ? a.done : a.tie < b.tie)));
  const start: Node = { order: [], mask: 0, at: 0, frontier: 0, swaps: 0, t: 0, back: 0, f: 0, tie: 0, done: false };
  start.f = heuristic(start);
  heap.push(start);
  const best = new Map<string, number>();
  let expansions = 0;
  let bestDone: Node | null = null;

  while (heap.size > 0) {
    const n = heap.pop()!;
    if (n.done) return { order: n.order, costMs: n.f, expansions };
    if (++expansions > q.maxExpansions) break;
    const left = rules.visit - n.order.length;
    if (left === 0) {
      const final = q.transform ? q.transform(n.order) : n.order;
      if (checkPath(final, rules) || !must.every((s) => n.order.includes(s))) continue;
      // The head hop (if the last block is not on stage S-1) and the backward pass close the path.
      let t = n.t;
      let back = n.back;
      const last = n.order[n.order.length - 1]!;
      if (last !== S - 1) {
        t += link[last]![S - 1]! + F[S - 1]! * EDGE_HOP_FRACTION;
        back += B[S - 1]! * EDGE_HOP_FRACTION + link[S - 1]![last]!;
      }
      const done: Node = { ...n, order: final, t, back, f: t + back, done: true };
      if (!bestDone || done.f < bestDone.f) bestDone = done;
      heap.push(done);
      continue;
    }
    for (let s = 0; s < S; s++) {
      if (has(n.mask, s) || !allowed(s)) continue;
      const swap = s < n.frontier;
      if (swap && (q.inOrder || n.frontier - s > rules.maxBehind || n.swaps + 1 > rules.maxSwaps)) continue;
      if (!swap && s - n.frontier > rules.maxJump) continue;
      const frontier = Math.max(n.frontier, s);
      const mask = n.mask + bit(s);
      const missing = must.filter((m) => !has(mask, m)).length;
      if (missing > left - 1) continue;
      if (!has(mask, S - 1) && Math.ceil((S - 1 - frontier) / rules.maxJump) > left - 1) continue;
      // Forward: the embedding hop first if the first block is not stage 0's, then the link and any wait.
      let t = n.t;
      let at = n.at;
      let back = n.back;
      if (n.order.length === 0 && s !== 0) {
        t += F[0]! * EDGE_HOP_FRACTION;
        back += B[0]! * EDGE_HOP_FRACTION;
      }
      const arrive = t + (s === at ? 0 : link[at]![s]!);
      const begin = earliestFree(q.reservations[s] ?? [], arrive, F[s]!);
      back += B[s]! + (s === at ? 0 : link[s]![at]!);
      at = s;
      const child: Node = { order: [...n.order, s], mask, at, frontier, swaps: n.swaps + (swap ? 1 : 0), t: begin + F[s]!, back, f: 0, tie: n.tie + q.tieBreak[s]!, done: false };
      child.f = child.t + child.back + heuristic(child);
      const key = `${mask}|${s}|${frontier}|${child.swaps}`;
      const seen = best.get(key);
      if (seen !== undefined && seen <= child.f) continue;
      best.set(key, child.f);
      heap.push(child);
    }
  }
  return bestDone ? { order: bestDone.order, costMs: bestDone.f, expansions } : null;
}
