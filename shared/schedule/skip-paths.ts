/**
 * SkipPipe's path rules (arXiv 2502.19913; the rules as the reference code gensyn-ai/skippipe
 * enforces them, docs/research.md), as pure functions over *block orders*.
 *
 * A block order lists the stages whose transformer blocks a microbatch runs, in the order it runs
 * them. The embedding always runs first on stage 0 and the head (and loss) last on stage S-1
 * (paths.ts hopsFromBlockOrder turns an order into hops), so stage 0 and stage S-1 are never
 * skipped; a skip path leaves out some of the intermediate stages 1..S-2. The full pipeline is
 * the order 0,1,...,S-1.
 *
 * Rules of one path (checkPath names the one broken):
 * - `stages`:  every entry is a stage index 0..S-1.
 * - `ends`:    stage 0 and stage S-1 are in the order (embedding / head stages run their blocks).
 * - `once`:    no stage appears twice.
 * - `length`:  exactly `visit` stages (the reference's fixed path length: its "33%" runs 4 of 6).
 * - `vacant`:  no vacant stage (a stage with no tab: paths train through the vacancy).
 * - `behind`:  a stage below the furthest stage reached so far (a *swap*) is at most `maxBehind`
 *              (1) stage behind it.
 * - `swaps`:   at most `maxSwaps` (2) swaps per path.
 * - `jump`:    a stage above the furthest reached so far is at most `maxJump` stages above it
 *              (the embedding counts as reaching stage 0). The reference bounds jumps at 4; a
 *              high skip ratio or a run of vacant stages needs more, so skipRules raises the bound
 *              to one more than the least that lets in-order paths reach, and leave out, every
 *              open stage (so every stage can meet its share; the one more lets
 *              CheckFree+'s last swap, which lengthens the step into S-1 by one, fit).
 *
 * Rules of one iteration's schedule (checkSchedule): each path obeys the rules above, and every
 * intermediate stage that is not vacant runs between its `floor` and `cap` microbatches
 * (coverage(): the mean share rounded down and up, adjusted for the visits CheckFree+'s partners
 * must get), so load stays balanced and every stage keeps learning whenever microbatches x visited
 * intermediates >= intermediates. Otherwise some stages sit out an iteration, and the next
 * request names them (skip-request.ts mustVisit) so that both schedulers rotate them in.
 *
 * CheckFree+ and skip paths compose like this (checkFreePairs, applyCheckFreeSwap): a microbatch
 * whose swap counter is odd (paths.ts) draws an in-order skip path that must include stages 1 and
 * S-2 (the edge stages' partners) and then swaps the first pair and the last pair of its block
 * order exactly as CheckFree+ does on the full path. Each swap is one stage behind and the two use
 * up the path's swap budget, so a swapped path has no other swap. When a path visits fewer than
 * two intermediates or fewer than half of them (requiring both partners of every other microbatch
 * would break their cap), one pair swaps, alternating with the counter (as paths.ts does for S = 3). A pair
 * whose partner stage is vacant is not swapped, and a microbatch for which no legal path holds
 * its partners (a tight skip ratio with vacancies) runs unswapped. With --skip-ratio 0 this is exactly paths.ts's
 * CheckFree+ order (tested).
 *
 * Validation, sampling and export run the full order (or an operator-chosen subset: evalOrder).
 */

export type PathRule = 'stages' | 'ends' | 'once' | 'length' | 'vacant' | 'behind' | 'swaps' | 'jump';
export type ScheduleRule = PathRule | 'count' | 'cap' | 'floor';

export interface SkipRules {
  nStages: number;
  /** Stages whose blocks each training path runs, stage 0 and S-1 included. */
  visit: number;
  /** Most swaps per path (reference: 2). */
  maxSwaps: number;
  /** Most stages a swap may go behind the furthest stage reached (reference: 1). */
  maxBehind: number;
  /** Most stages a step may go beyond the furthest stage reached (reference: 4, raised if needed). */
  maxJump: number;
  /** Intermediate stages no path may visit (no tab serves them). Sorted, distinct. */
  vacant: readonly number[];
}

export interface Violation<R extends string = PathRule> {
  rule: R;
  message: string;
}

export const REFERENCE_LIMITS = { maxSwaps: 2, maxBehind: 1, maxJump: 4 } as const;

export class SkipRuleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SkipRuleError';
  }
}

/** The full pipeline's block order 0..S-1. */
export function fullOrder(nStages: number): number[] {
  return Array.from({ length: nStages }, (_, i) => i);
}

/**
 * How many intermediate stages a path skips for `--skip-ratio r`: about r of the model's S stages
 * (round(r * S)), leaving at least one intermediate on every path (S >= 3), so that the
 * intermediates keep learning. r = 0 is the full pipeline.
 */
export function skipCount(skipRatio: number, nStages: number): number {
  if (!Number.isFinite(skipRatio) || skipRatio < 0 || skipRatio >= 1) throw new SkipRuleError(`skip ratio must be in [0, 1), got ${skipRatio}`);
  assertStages(nStages);
  return Math.min(Math.max(nStages - 3, 0), Math.round(skipRatio * nStages));
}

function assertStages(nStages: number): void {
  if (!Number.isInteger(nStages) || nStages < 1) throw new SkipRuleError(`stages must be an integer >= 1, got ${nStages}`);
}

/** Fewest stages an in-order path from `from` to `to` over the allowed stages needs with steps of at most `jump` (Infinity: none). */
function fewestStages(from: number, to: number, allowed: (s: number) => boolean, jump: number): number {
  let at = from;
  let count = 1;
  while (at < to) {
    let next = -1;
    for (let s = Math.min(to, at + jump); s > at; s--) {
      if (s === to || allowed(s)) {
        next = s;
        break;
      }
    }
    if (next < 0) return Infinity;
    at = next;
    count++;
  }
  return count;
}

/**
 * True when, with steps of at most `jump`, a path of `visit` stages exists, every allowed
 * intermediate lies on one and (when paths cannot hold them all) every one can be left out.
 */
function reachable(S: number, visit: number, allowed: (s: number) => boolean, jump: number): boolean {
  if (S === 1) return true;
  if (fewestStages(0, S - 1, allowed, jump) > visit) return false;
  const open = fullOrder(S).filter((s) => s > 0 && s < S - 1 && allowed(s));
  for (const s of open) {
    if (fewestStages(0, s, allowed, jump) + fewestStages(s, S - 1, allowed, jump) - 1 > visit) return false;
    // A stage no path can leave out would run every microbatch, past its share.
    if (open.length > visit - 2 && fewestStages(0, S - 1, (x) => x !== s && allowed(x), jump) > visit) return false;
  }
  return true;
}

/**
 * The rules for a run of `nStages` stages with `--skip-ratio skipRatio` and the given vacant
 * intermediate stages: paths visit S - skipCount stages (fewer if more stages are vacant), and the
 * jump bound is the reference's 4 or the least that lets such a path exist.
 */
export function skipRules(o: { nStages: number; skipRatio: number; vacant?: readonly number[]; maxJump?: number }): SkipRules {
  const S = o.nStages;
  const k = skipCount(o.skipRatio, S);
  const vacant = [...new Set(o.vacant ?? [])].sort((a, b) => a - b);
  for (const v of vacant) {
    if (!Number.isInteger(v) || v <= 0 || v >= S - 1) throw new SkipRuleError(`only intermediate stages 1..${S - 2} can be vacant on a skip path, got ${v}`);
  }
  const visit = Math.min(S - k, S - vacant.length);
  const allowed = (s: number) => !vacant.includes(s);
  let maxJump = o.maxJump ?? REFERENCE_LIMITS.maxJump;
  if (!Number.isInteger(maxJump) || maxJump < 1) throw new SkipRuleError(`maxJump must be an integer >= 1, got ${maxJump}`);
  let least = 1;
  while (!reachable(S, visit, allowed, least)) least++;
  // One more than the least, so that CheckFree+'s last swap (S-1 before S-2) still fits.
  maxJump = Math.max(maxJump, least > 1 ? least + 1 : least);
  return { nStages: S, visit, maxSwaps: REFERENCE_LIMITS.maxSwaps, maxBehind: REFERENCE_LIMITS.maxBehind, maxJump, vacant };
}

/** Swaps (steps below the furthest stage reached), the largest swap distance and the largest forward jump of an order. */
export function pathShape(order: readonly number[]): { swaps: number; furthestBehind: number; largestJump: number } {
  let frontier = 0;
  let swaps = 0;
  let furthestBehind = 0;
  let largestJump = 0;
  for (const s of order) {
    if (s < frontier) {
      swaps++;
      furthestBehind = Math.max(furthestBehind, frontier - s);
    } else {
      largestJump = Math.max(largestJump, s - frontier);
      frontier = s;
    }
  }
  return { swaps, furthestBehind, largestJump };
}

/** The first rule `order` breaks, or null when it is a legal training path under `rules`. */
export function checkPath(order: readonly number[], rules: SkipRules): Violation | null {
  const S = rules.nStages;
  for (const s of order) {
    if (!Number.isInteger(s) || s < 0 || s >= S) return { rule: 'stages', message: `stage ${s} is not a stage of a ${S}-stage pipeline` };
  }
  if (!order.includes(0) || !order.includes(S - 1)) return { rule: 'ends', message: `a path must run stage 0 and stage ${S - 1} (embedding and head stages), got ${order.join(',')}` };
  if (new Set(order).size !== order.length) return { rule: 'once', message: `a path visits each stage at most once, got ${order.join(',')}` };
  if (order.length !== rules.visit) return { rule: 'length', message: `a path visits ${rules.visit} stages, got ${order.length} (${order.join(',')})` };
  const v = order.find((s) => rules.vacant.includes(s));
  if (v !== undefined) return { rule: 'vacant', message: `stage ${v} is vacant and cannot be on a path` };
  let frontier = 0;
  let swaps = 0;
  for (const s of order) {
    if (s < frontier) {
      if (frontier - s > rules.maxBehind) return { rule: 'behind', message: `stage ${s} is ${frontier - s} behind the furthest stage reached (${frontier}); at most ${rules.maxBehind}` };
      if (++swaps > rules.maxSwaps) return { rule: 'swaps', message: `more than ${rules.maxSwaps} swaps in ${order.join(',')}` };
    } else {
      if (s - frontier > rules.maxJump) return { rule: 'jump', message: `a step from stage ${frontier} to ${s} jumps ${s - frontier} stages; at most ${rules.maxJump}` };
      frontier = s;
    }
  }
  return null;
}

/** Per stage, the fewest and the most microbatches it may run in one iteration. */
export interface Coverage {
  floor: number[];
  cap: number[];
}

/**
 * Balanced per-stage bounds for one iteration of `microbatches` paths (stage 0 and S-1: every
 * microbatch; vacant stages: none). The open intermediates share the M x (visit - 2) visits as
 * evenly as they can (water-filling to a level K): a stage runs between min(K) and min(K + 1)
 * microbatches, each clamped to at least `demand[s]` (microbatches that must visit it: CheckFree+'s
 * partners) and at most `room[s]` (microbatches that can: those whose path is not already full of
 * required stages). Without demand or room limits this is the mean share rounded down and up.
 */
export function coverage(rules: SkipRules, microbatches: number, demand?: readonly number[], room?: readonly number[]): Coverage {
  const S = rules.nStages;
  const M = microbatches;
  const floor = new Array<number>(S).fill(0);
  const cap = new Array<number>(S).fill(0);
  floor[0] = cap[0] = M;
  floor[S - 1] = cap[S - 1] = M;
  const open = fullOrder(S).filter((s) => s > 0 && s < S - 1 && !rules.vacant.includes(s));
  if (open.length === 0) return { floor, cap };
  const total = M * (rules.visit - 2);
  const lo = (s: number) => Math.min(demand?.[s] ?? 0, M);
  const hi = (s: number) => Math.max(lo(s), Math.min(room?.[s] ?? M, M));
  const fill = (k: number) => open.reduce((a, s) => a + Math.min(hi(s), Math.max(lo(s), k)), 0);
  let k = 0;
  while (k < M && fill(k + 1) <= total) k++;
  const exact = fill(k) === total;
  for (const s of open) {
    floor[s] = Math.min(hi(s), Math.max(lo(s), k));
    cap[s] = exact ? floor[s]! : Math.min(hi(s), Math.max(lo(s), k + 1));
  }
  return { floor, cap };
}

/** How many of `orders` visit each stage. */
export function stageCounts(orders: readonly (readonly number[])[], nStages: number): number[] {
  const counts = new Array<number>(nStages).fill(0);
  for (const o of orders) for (const s of o) if (s >= 0 && s < nStages) counts[s]!++;
  return counts;
}

/**
 * The first rule one iteration's `orders` break (each path, then each open intermediate's floor
 * and cap: `bounds`, by default coverage(rules, M)), or null.
 */
export function checkSchedule(orders: readonly (readonly number[])[], rules: SkipRules, microbatches: number, bounds: Coverage = coverage(rules, microbatches)): Violation<ScheduleRule> | null {
  if (orders.length !== microbatches) return { rule: 'count', message: `a schedule has one path per microbatch (${microbatches}), got ${orders.length}` };
  for (let mb = 0; mb < orders.length; mb++) {
    const v = checkPath(orders[mb]!, rules);
    if (v) return { rule: v.rule, message: `microbatch ${mb}: ${v.message}` };
  }
  const counts = stageCounts(orders, rules.nStages);
  for (let s = 1; s < rules.nStages - 1; s++) {
    if (rules.vacant.includes(s)) continue;
    if (counts[s]! > bounds.cap[s]!) return { rule: 'cap', message: `stage ${s} runs ${counts[s]} microbatches; the cap is ${bounds.cap[s]}` };
    if (counts[s]! < bounds.floor[s]!) return { rule: 'floor', message: `stage ${s} runs ${counts[s]} microbatches; it must run at least ${bounds.floor[s]}` };
  }
  return null;
}

/** Which of CheckFree+'s pairs a microbatch swaps: (0,1) `first`, (S-2,S-1) `last`. */
export interface SwapPairs {
  first: boolean;
  last: boolean;
}

/**
 * The CheckFree+ pairs the microbatch with swap counter `counter` swaps under `rules`: none on an
 * even counter or with `swap` off; both for S >= 4 (as paths.ts blockOrder) when the path visits at
 * least two intermediates and at least half of the open ones (else the partners' required visits
 * would exceed their cap), otherwise one pair alternating with the counter as paths.ts does for S = 3;
 * S = 2 swaps its one pair. A pair whose partner (stage 1, stage S-2) is vacant is not swapped.
 */
export function checkFreePairs(counter: number, rules: SkipRules, swap: boolean): SwapPairs {
  const S = rules.nStages;
  const none = { first: false, last: false };
  if (!swap || S < 2 || counter % 2 === 0) return none;
  if (S === 2) return { first: true, last: false };
  const inner = rules.visit - 2;
  const open = S - 2 - rules.vacant.length;
  const both = S >= 4 && inner >= 2 && 2 * inner >= open;
  const pick = both ? { first: true, last: true } : { first: counter % 4 === 1, last: counter % 4 === 3 };
  return { first: pick.first && !rules.vacant.includes(1), last: pick.last && !rules.vacant.includes(S - 2) };
}

/** The stages a path with CheckFree+ pairs `pairs` must visit: the edge stages' partners. */
export function checkFreeRequired(pairs: SwapPairs, nStages: number): number[] {
  if (nStages < 3) return [];
  const out: number[] = [];
  if (pairs.first) out.push(1);
  if (pairs.last && !out.includes(nStages - 2)) out.push(nStages - 2);
  return out;
}

/**
 * CheckFree+'s swap applied to an in-order skip path (see the file comment): each pair in `pairs`
 * trades places when the order starts with 0,1 (`first`) or ends with S-2,S-1 (`last`).
 */
export function applyCheckFreeSwap(order: readonly number[], pairs: SwapPairs, nStages: number): number[] {
  const out = [...order];
  const n = out.length;
  if (pairs.first && out[0] === 0 && out[1] === 1) [out[0], out[1]] = [out[1]!, out[0]!];
  if (pairs.last && n >= 2 && out[n - 1] === nStages - 1 && out[n - 2] === nStages - 2) [out[n - 2], out[n - 1]] = [out[n - 1]!, out[n - 2]!];
  return out;
}

/**
 * The block order of a partial model for sampling, validation or export-then-evaluate with only
 * `stages` (an operator's choice, e.g. `--eval-stages 0,2,3`): in order, stage 0 and S-1 required
 * (they hold the embedding and head).
 */
export function evalOrder(stages: readonly number[], nStages: number): number[] {
  const order = [...new Set(stages)].sort((a, b) => a - b);
  for (const s of order) if (!Number.isInteger(s) || s < 0 || s >= nStages) throw new SkipRuleError(`stage ${s} is not a stage of a ${nStages}-stage pipeline`);
  if (order[0] !== 0 || order[order.length - 1] !== nStages - 1) throw new SkipRuleError(`an evaluated subset must include stage 0 and stage ${nStages - 1} (embedding and head), got ${order.join(',')}`);
  return order;
}
