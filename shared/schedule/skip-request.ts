/**
 * What a skip scheduler is asked for one iteration, and the per-microbatch constraints both
 * schedulers (skip-random.ts, skip-collision.ts) derive from it the same way: each microbatch's
 * CheckFree+ pairs and the stages they require, and each stage's least number of microbatches.
 */
import { blockOrder, swapCounter } from './paths.js';
import { checkFreePairs, checkFreeRequired, coverage, type Coverage, type SkipRules, type SwapPairs } from './skip-paths.js';
import { speedCoverage } from './skip-speed-coverage.js';

export interface ScheduleRequest {
  rules: SkipRules;
  microbatches: number;
  /** The iteration (from 0): picks CheckFree+'s swapped microbatches (paths.ts swapCounter) and seeds the draw. */
  iteration: number;
  /** CheckFree+'s swapped order on odd swap counters. */
  swap: boolean;
  seed: number;
  /**
   * Intermediate stages that must run at least one microbatch this iteration although the mean
   * share rounds down to 0 (pass the stages the previous iteration left out: unvisitedStages), so
   * that every stage keeps learning when microbatches x visited intermediates < intermediates.
   */
  mustVisit?: readonly number[];
  /**
   * Per-stage speed (1 / measured forward ms): when given, the open intermediates' bounds follow
   * it (skip-speed-coverage.ts) instead of the equal mean share, so slow stages can be unloaded.
   */
  speed?: readonly number[];
}

export const SCHEDULERS = ['random', 'collision'] as const;
export type SchedulerKind = (typeof SCHEDULERS)[number];

export interface MicrobatchPlan {
  pairs: SwapPairs;
  /** Intermediate stages this microbatch's path must visit (CheckFree+'s partners). */
  required: number[];
}

/** The plan of a microbatch that swaps nothing (also the fallback when no legal path holds its partners). */
export const UNSWAPPED: MicrobatchPlan = { pairs: { first: false, last: false }, required: [] };

/** Each microbatch's CheckFree+ pairs and required stages. */
export function microbatchPlans(req: ScheduleRequest): MicrobatchPlan[] {
  return Array.from({ length: req.microbatches }, (_, mb) => {
    const pairs = checkFreePairs(swapCounter(req.iteration, req.microbatches, mb), req.rules, req.swap);
    return { pairs, required: checkFreeRequired(pairs, req.rules.nStages) };
  });
}

/**
 * The per-stage bounds both schedulers meet (skip-paths.ts coverage, with each stage's CheckFree+
 * demand and room), with the floor of `mustVisit` stages raised to 1 while the visits allow it.
 */
export function scheduleBounds(req: ScheduleRequest): Coverage {
  const { rules, microbatches: M } = req;
  const S = rules.nStages;
  const inner = rules.visit - 2;
  const plans = microbatchPlans(req);
  const demand = new Array<number>(S).fill(0);
  const room = new Array<number>(S).fill(0);
  for (const p of plans) {
    for (const s of p.required) demand[s]!++;
    for (let s = 0; s < S; s++) if (p.required.includes(s) || p.required.length < inner) room[s]!++;
  }
  const bounds = req.speed ? speedCoverage(rules, M, req.speed, demand, room) : coverage(rules, M, demand, room);
  let spare = M * inner - bounds.floor.slice(1, S - 1).reduce((a, b) => a + b, 0);
  for (const s of req.mustVisit ?? []) {
    if (spare <= 0) break;
    if (Number.isInteger(s) && s > 0 && s < S - 1 && !rules.vacant.includes(s) && bounds.floor[s] === 0 && bounds.cap[s]! >= 1) {
      bounds.floor[s] = 1;
      spare--;
    }
  }
  return bounds;
}

/** The open intermediate stages no path of `orders` visits (what the next request's mustVisit takes). */
export function unvisitedStages(orders: readonly (readonly number[])[], rules: SkipRules): number[] {
  const seen = new Set(orders.flat());
  const out: number[] = [];
  for (let s = 1; s < rules.nStages - 1; s++) if (!seen.has(s) && !rules.vacant.includes(s)) out.push(s);
  return out;
}

/** A 32-bit seed for (seed, iteration, salt): every process draws the same schedule. */
export function drawSeed(seed: number, iteration: number, salt = 0): number {
  let h = 0x811c9dc5;
  for (const x of [seed, iteration, salt]) {
    h ^= x >>> 0;
    h = Math.imul(h, 0x01000193) >>> 0;
    h ^= Math.floor(x / 2 ** 32) >>> 0;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Today's schedule (nothing skipped): paths.ts's block orders, CheckFree+'s swaps included. */
export function fullSchedule(req: ScheduleRequest): number[][] {
  return Array.from({ length: req.microbatches }, (_, mb) => blockOrder(swapCounter(req.iteration, req.microbatches, mb), req.rules.nStages, req.swap));
}
