/**
 * The collision-aware skip schedule (in the spirit of the reference's CBS.py; SkipPipe,
 * arXiv 2502.19913, docs/research.md): one iteration's paths chosen to minimise its makespan under
 * the measured stage times and links (skip-timing.ts), obeying every rule of skip-paths.ts.
 *
 * Low level: each microbatch's path is found by A* (skip-astar.ts). Microbatches are planned one
 * after another (in the order they enter the pipeline, and in ROOTS - 1 seeded shuffles of it: the
 * search starts from one root per planning order); each one sees the intervals the earlier ones hold on every
 * stage (forward and backward), so two passes never share a stage at once in the plan: the later
 * one waits or routes through another stage (time collisions are settled by this priority, where
 * the reference branches on them). The planning keeps per-stage quotas between floor and cap (the
 * visits above the floors go to the fastest stages in the first root, to seeded picks in the
 * others), so a plan meets the per-stage bounds by construction whenever its paths exist.
 *
 * High level, conflict-based search: a node carries per-microbatch constraints (stages forbidden,
 * stages required) and the plan they give. A node's first conflict is a stage above its cap
 * (children: one of up to three windows of its microbatches, latest finishing first, may not
 * visit it) or an open stage below its least visits (children: windows of microbatches that skip
 * it, earliest finishing first, must visit it). A conflict-free node is a solution; its children
 * forbid, one at a time, to each of the three microbatches finishing last the stages where they
 * waited longest (the makespan objective). Nodes are expanded cheapest simulated makespan first
 * (skip-timing.ts); as in the reference the search stops at a solution at most 0.88x the first,
 * after 8 solutions, or when `maxNodes` nodes were planned, and returns the fastest solution. If
 * there is none it falls back to the random schedule (`fallback`). Deterministic given the
 * request's seed and iteration. With nothing skipped it returns today's full paths.
 */
import { mulberry32 } from '../model/rng.js';
import { MinHeap } from './min-heap.js';
import { applyCheckFreeSwap, stageCounts } from './skip-paths.js';
import { planPath, timeRoundTrip, type Interval } from './skip-astar.js';
import { randomSchedule } from './skip-random.js';
import { drawSeed, fullSchedule, microbatchPlans, scheduleBounds, UNSWAPPED, type MicrobatchPlan, type ScheduleRequest } from './skip-request.js';
import { checkCosts, simulateIteration, type StageCosts } from './skip-timing.js';

export interface CollisionOptions {
  /** Most search nodes planned (default 64). */
  maxNodes?: number;
  /** Most A* expansions per path (default 20000). */
  maxExpansions?: number;
  /** The pipeline's in-flight window for the makespan (default: every microbatch). */
  maxInFlight?: number;
}

export interface CollisionResult {
  orders: number[][];
  /** The simulated makespan of `orders` (skip-timing.ts). */
  makespanMs: number;
  /** Search nodes planned. */
  nodes: number;
  /** Conflict-free plans found. */
  solutions: number;
  /** True when no conflict-free plan was found within the bound and the random schedule is used. */
  fallback: boolean;
}

export const STOP_RATIO = 0.88;
export const STOP_SOLUTIONS = 8;
const BRANCHES = 3;
/** Planning orders tried: the pipeline's own and seeded shuffles (prioritized planning's restarts). */
const ROOTS = 4;

interface SearchNode {
  forbidden: Set<number>[];
  required: Set<number>[];
  orders: number[][];
  finish: number[];
  /** Per microbatch, per stage: ms its forward waited for the stage in the plan. */
  waits: number[][];
  /** Index of the planning order (priorities) the node plans with. */
  priority: number;
  makespan: number;
  seq: number;
}

/** One iteration's block orders chosen against the measured `costs`. */
export function collisionSchedule(req: ScheduleRequest, costs: StageCosts, opts: CollisionOptions = {}): CollisionResult {
  const { rules, microbatches: M } = req;
  const S = rules.nStages;
  checkCosts(costs, S);
  const maxNodes = opts.maxNodes ?? 64;
  const maxExpansions = opts.maxExpansions ?? 20000;
  const plans = microbatchPlans(req);
  if (rules.visit === S) {
    const orders = fullSchedule(req);
    return { orders, makespanMs: simulateIteration(orders, S, costs, { maxInFlight: opts.maxInFlight }).makespanMs, nodes: 0, solutions: 1, fallback: false };
  }
  const bounds = scheduleBounds(req);
  const least = bounds.floor;
  const cap = bounds.cap;
  const rand = mulberry32(drawSeed(req.seed, req.iteration, 2));
  const tieBreak = Array.from({ length: S }, () => rand() * 1e-9);
  const simulate = (orders: number[][]) => simulateIteration(orders, S, costs, { maxInFlight: opts.maxInFlight });

  const inner = rules.visit - 2;
  /**
   * Plans every microbatch under the node's constraints (null when one has no legal path). The
   * planning keeps per-stage quotas (`quotas`: each stage's visits this iteration, between its floor
   * and cap, summing to M x (visit - 2)): a stage whose quota is used up is closed, one whose quota
   * equals the microbatches left is required, as in the random schedule, so every plan meets the
   * bounds whenever its paths exist.
   */
  const plan = (forbidden: Set<number>[], required: Set<number>[], priority: readonly number[], quotas: readonly number[]): { orders: number[][]; finish: number[]; makespan: number; waits: number[][] } | null => {
    const reservations: Interval[][] = Array.from({ length: S }, () => []);
    const orders: number[][] = new Array<number[]>(M);
    const waits: number[][] = new Array<number[]>(M);
    const quota = [...quotas];
    for (let k = 0; k < M; k++) {
      const mb = priority[k]!;
      const rest = priority.slice(k + 1);
      const find = (own: MicrobatchPlan, inOrder: boolean) => {
        const laterRequired = (st: number) => rest.filter((j) => plans[j]!.required.includes(st) || required[j]!.has(st)).length;
        const req = new Set([...own.required, ...required[mb]!]);
        for (let st = 1; st < S - 1; st++) if (quota[st]! >= M - k && quota[st]! > 0) req.add(st);
        if (req.size > inner || [...req].some((st) => quota[st]! - laterRequired(st) <= 0)) return null;
        const forb = new Set(forbidden[mb]!);
        for (let st = 1; st < S - 1; st++) if (!req.has(st) && quota[st]! - laterRequired(st) <= 0) forb.add(st);
      const transform = (o: number[]) => applyCheckFreeSwap(o, own.pairs, S);
        return planPath({ rules, costs, forbidden: forb, required: req, inOrder, reservations, tieBreak, maxExpansions, transform });
      };
      // A CheckFree+ microbatch for which no legal path holds its partners runs in order, unswapped.
      const own = plans[mb]!;
      const swapped = own.pairs.first || own.pairs.last;
      const r = find(own, swapped) ?? (own.required.length ? find(UNSWAPPED, true) : null);
      if (!r) return null;
      const order = r.order;
      orders[mb] = order;
      for (const st of order) if (st > 0 && st < S - 1) quota[st]!--;
      const wait = new Array<number>(S).fill(0);
      for (const task of timeRoundTrip(order, S, costs, reservations)) {
        if (task.dir === 'F') wait[task.stage]! += task.wait;
        const list = reservations[task.stage]!;
        list.push({ start: task.start, end: task.end });
        list.sort((x, y) => x.start - y.start);
      }
      waits[mb] = wait;
    }
    const timing = simulate(orders);
    return { orders, finish: timing.finishMs, makespan: timing.makespanMs, waits };
  };

  /** Children constraint sets: up to BRANCHES windows of `need` microbatches from `candidates`. */
  const windows = (candidates: number[], need: number): number[][] => {
    const out: number[][] = [];
    for (let i = 0; i < BRANCHES && i + need <= candidates.length; i++) out.push(candidates.slice(i, i + need));
    return out;
  };
  type Conflict = { kind: 'cap' | 'floor'; stage: number; groups: number[][] };
  const firstConflict = (n: SearchNode): Conflict | null => {
    const counts = stageCounts(n.orders, S);
    const byFinish = (a: number, b: number) => n.finish[a]! - n.finish[b]! || a - b;
    for (let s = 1; s < S - 1; s++) {
      if (rules.vacant.includes(s)) continue;
      if (counts[s]! > cap[s]!) {
        const mbs = n.orders.map((o, mb) => (o.includes(s) && !plans[mb]!.required.includes(s) && !n.required[mb]!.has(s) ? mb : -1)).filter((mb) => mb >= 0);
        return { kind: 'cap', stage: s, groups: windows(mbs.sort((a, b) => byFinish(b, a)), counts[s]! - cap[s]!) };
      }
      if (counts[s]! < least[s]!) {
        const mbs = n.orders.map((o, mb) => (!o.includes(s) && !n.forbidden[mb]!.has(s) && plans[mb]!.required.length + n.required[mb]!.size < inner ? mb : -1)).filter((mb) => mb >= 0);
        return { kind: 'floor', stage: s, groups: windows(mbs.sort(byFinish), least[s]! - counts[s]!) };
      }
    }
    return null;
  };

  const key = (forbidden: Set<number>[], required: Set<number>[], p: number) =>
    `${p}:` + forbidden.map((f, mb) => `${[...f].sort().join('.')}/${[...required[mb]!].sort().join('.')}`).join('|');
  // Quotas: every open stage its floor; the visits left over go one each, up to the caps, to the
  // fastest stages (root 0) or to stages in a seeded order (the other roots).
  const openStages = Array.from({ length: S }, (_, st) => st).filter((st) => st > 0 && st < S - 1 && !rules.vacant.includes(st));
  const quotaFor = (order: number[]): number[] => {
    const q = [...least];
    let extra = M * inner - openStages.reduce((a, st) => a + q[st]!, 0);
    for (const st of order) {
      if (extra <= 0) break;
      if (q[st]! < cap[st]!) {
        q[st]!++;
        extra--;
      }
    }
    return q;
  };
  const fastest = [...openStages].sort((a, b) => costs.forwardMs[a]! + costs.backwardMs[a]! - (costs.forwardMs[b]! + costs.backwardMs[b]!) || a - b);
  const quotaSets: number[][] = [quotaFor(fastest)];
  // Planning orders: the pipeline's own (microbatch 0 first), then seeded shuffles (restarts).
  const priorities: number[][] = [Array.from({ length: M }, (_, i) => i)];
  for (let r = 1; r < ROOTS && M > 1; r++) {
    const p = Array.from({ length: M }, (_, i) => i);
    for (let i = M - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [p[i], p[j]] = [p[j]!, p[i]!];
    }
    priorities.push(p);
    const shuffled = [...openStages];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    quotaSets.push(quotaFor(shuffled));
  }
  const open = new MinHeap<SearchNode>((a, b) => a.makespan < b.makespan || (a.makespan === b.makespan && a.seq < b.seq));
  const seen = new Set<string>();
  let nodes = 0;
  let seq = 0;
  const push = (forbidden: Set<number>[], required: Set<number>[], priority: number) => {
    const k = key(forbidden, required, priority);
    if (seen.has(k) || nodes >= maxNodes) return;
    seen.add(k);
    nodes++;
    const p = plan(forbidden, required, priorities[priority]!, quotaSets[priority]!);
    if (p) open.push({ forbidden, required, priority, ...p, seq: seq++ });
  };
  priorities.forEach((_, i) =>
    push(
      Array.from({ length: M }, () => new Set<number>()),
      Array.from({ length: M }, () => new Set<number>()),
      i,
    ),
  );

  let first: SearchNode | null = null;
  let bestSolution: SearchNode | null = null;
  let solutions = 0;
  while (open.size > 0) {
    const n = open.pop()!;
    const c = firstConflict(n);
    if (c) {
      for (const group of c.groups) {
        const forbidden = n.forbidden.map((f) => new Set(f));
        const required = n.required.map((r) => new Set(r));
        for (const mb of group) (c.kind === 'cap' ? forbidden : required)[mb]!.add(c.stage);
        push(forbidden, required, n.priority);
      }
      continue;
    }
    solutions++;
    first ??= n;
    if (!bestSolution || n.makespan < bestSolution.makespan) bestSolution = n;
    if (solutions >= STOP_SOLUTIONS || n.makespan <= STOP_RATIO * first.makespan) break;
    // Improve on a conflict-free plan: each of the three microbatches that finish last avoids, one
    // at a time, the intermediate stages where its forward waited longest (or its slowest ones).
    const latest = n.finish.map((f, mb) => ({ f, mb })).sort((a, b) => b.f - a.f || a.mb - b.mb).slice(0, BRANCHES);
    for (const { mb } of latest) {
      const avoid = n.orders[mb]!
        .filter((st) => st > 0 && st < S - 1 && !plans[mb]!.required.includes(st) && !n.required[mb]!.has(st))
        .sort((a, b) => n.waits[mb]![b]! - n.waits[mb]![a]! || costs.forwardMs[b]! - costs.forwardMs[a]! || a - b)
        .slice(0, BRANCHES);
      for (const st of avoid) {
        const forbidden = n.forbidden.map((f) => new Set(f));
        forbidden[mb]!.add(st);
        push(forbidden, n.required.map((r) => new Set(r)), n.priority);
      }
    }
  }
  if (bestSolution) return { orders: bestSolution.orders, makespanMs: bestSolution.makespan, nodes, solutions, fallback: false };
  // mustVisit is best effort: a stage that sat out may not fit this iteration's paths.
  if (req.mustVisit?.length) return collisionSchedule({ ...req, mustVisit: [] }, costs, opts);
  const orders = randomSchedule(req);
  return { orders, makespanMs: simulate(orders).makespanMs, nodes, solutions, fallback: true };
}
