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
 *              to the least that lets a path exist.
 *
 * Rules of one iteration's schedule (checkSchedule): each path obeys the rules above, and every
 * intermediate stage that is not vacant runs between `floor` and `cap` microbatches
 * (coverage(): the mean share rounded down and up), so load stays balanced and every stage keeps
 * learning whenever microbatches x visited intermediates >= intermediates (otherwise some stages
 * sit out an iteration; the random scheduler rotates them, the collision-aware one is told the
 * previous visits and breaks ties toward the least visited).
 *
 * CheckFree+ and skip paths compose like this (checkFreePairs, applyCheckFreeSwap): a microbatch
 * whose swap counter is odd (paths.ts) draws an in-order skip path that must include stages 1 and
 * S-2 (the edge stages' partners) and then swaps the first pair and the last pair of its block
 * order exactly as CheckFree+ does on the full path. Each swap is one stage behind and the two use
 * up the path's swap budget, so a swapped path has no other swap. When a path visits fewer than
 * two intermediates or fewer than half of them (requiring both partners of every other microbatch
 * would break their cap), one pair swaps, alternating with the counter (as paths.ts does for S = 3). A pair
 * whose partner stage is vacant is not swapped. With --skip-ratio 0 this is exactly paths.ts's
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

/** Fewest stages an in-order path from 0 to S-1 over the allowed stages needs with steps of at most `jump` (Infinity: none exists). */
function fewestStages(nStages: number, allowed: (s: number) => boolean, jump: number): number {
  if (nStages === 1) return 1;
  let at = 0;
  let count = 1;
  while (at < nStages - 1) {
    let next = -1;
    for (let s = Math.min(nStages - 1, at + jump); s > at; s--) {
      if (allowed(s)) {
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
  while (fewestStages(S, allowed, maxJump) > visit) maxJump++;
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

/** Per-iteration coverage bounds of each non-vacant intermediate stage: floor and cap of the mean share. */
export function coverage(rules: SkipRules, microbatches: number): { floor: number; cap: number } {
  const open = rules.nStages - 2 - rules.vacant.length;
  if (open <= 0) return { floor: 0, cap: 0 };
  const mean = (microbatches * (rules.visit - 2)) / open;
  return { floor: Math.floor(mean), cap: Math.ceil(mean) };
}

/** How many of `orders` visit each stage. */
export function stageCounts(orders: readonly (readonly number[])[], nStages: number): number[] {
  const counts = new Array<number>(nStages).fill(0);
  for (const o of orders) for (const s of o) if (s >= 0 && s < nStages) counts[s]!++;
  return counts;
}

/** The first rule one iteration's `orders` break (each path, then the per-stage cap and floor), or null. */
export function checkSchedule(orders: readonly (readonly number[])[], rules: SkipRules, microbatches: number): Violation<ScheduleRule> | null {
  if (orders.length !== microbatches) return { rule: 'count', message: `a schedule has one path per microbatch (${microbatches}), got ${orders.length}` };
  for (let mb = 0; mb < orders.length; mb++) {
    const v = checkPath(orders[mb]!, rules);
    if (v) return { rule: v.rule, message: `microbatch ${mb}: ${v.message}` };
  }
  const { floor, cap } = coverage(rules, microbatches);
  const counts = stageCounts(orders, rules.nStages);
  for (let s = 1; s < rules.nStages - 1; s++) {
    if (rules.vacant.includes(s)) continue;
    if (counts[s]! > cap) return { rule: 'cap', message: `stage ${s} runs ${counts[s]} microbatches; the cap is ${cap}` };
    if (counts[s]! < floor) return { rule: 'floor', message: `stage ${s} runs ${counts[s]} microbatches; every stage runs at least ${floor}` };
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
