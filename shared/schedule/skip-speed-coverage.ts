/**
 * Per-stage bounds that follow measured speed (docs/skippipe.md "Caps that follow speed"): the
 * open intermediate stages share one iteration's M x (visit - 2) visits in proportion to their
 * speed (1 / measured forward ms), so the collision-aware schedule can unload a slow
 * intermediate. The reference (gensyn-ai/skippipe create_schedule.py) caps a stage by its
 * capacity (MAX_MB_PER_STAGE = devices in the stage x memory per device), not by the mean share;
 * this is the same idea with capacity measured as throughput. So that every stage keeps
 * learning, a stage's floor never drops below MIN_SHARE_OF_MEAN of the mean share (at least 1
 * visit while the visits allow one per stage), and CheckFree+'s demand / room clamps
 * (skip-paths.ts coverage) still hold.
 *
 * Pure: the same inputs give the same bounds on every process.
 */
import { coverage, type Coverage, type SkipRules } from './skip-paths.js';

/** A stage's floor is at least this fraction of the mean share (rounded down). */
export const MIN_SHARE_OF_MEAN = 0.5;

/**
 * Bounds like skip-paths.ts coverage, with the open intermediates' shares weighted by `speed`
 * (per stage, > 0 and finite; anything else counts as the median speed). Equal speeds give the
 * equal shares of coverage(). Falls back to coverage() when the weighted shares cannot meet the
 * demand / room clamps.
 */
export function speedCoverage(rules: SkipRules, microbatches: number, speed: readonly number[], demand?: readonly number[], room?: readonly number[]): Coverage {
  const S = rules.nStages;
  const M = microbatches;
  const equal = coverage(rules, M, demand, room);
  const open: number[] = [];
  for (let s = 1; s < S - 1; s++) if (!rules.vacant.includes(s)) open.push(s);
  if (open.length === 0) return equal;
  const good = open.map((s) => speed[s]).filter((v): v is number => v !== undefined && Number.isFinite(v) && v > 0);
  if (good.length === 0) return equal;
  const sorted = [...good].sort((a, b) => a - b);
  const typical = sorted[sorted.length >> 1]!;
  const w = (s: number) => {
    const v = speed[s];
    return v !== undefined && Number.isFinite(v) && v > 0 ? v : typical;
  };
  const total = M * (rules.visit - 2);
  const least = total >= open.length ? Math.max(1, Math.floor((MIN_SHARE_OF_MEAN * total) / open.length)) : 0;
  const lo = (s: number) => Math.min(Math.max(demand?.[s] ?? 0, least), M);
  const hi = (s: number) => Math.max(lo(s), Math.min(room?.[s] ?? M, M));
  const share = (k: number, s: number) => Math.min(hi(s), Math.max(lo(s), k * w(s)));
  const sum = (k: number) => open.reduce((a, s) => a + share(k, s), 0);
  if (sum(0) > total || sum(Number.MAX_VALUE) < total) return equal;
  // The level k where the clamped weighted shares add up to the visits (sum is monotone in k).
  let a = 0;
  let b = 1;
  while (sum(b) < total) b *= 2;
  for (let i = 0; i < 100; i++) {
    const m = (a + b) / 2;
    if (sum(m) < total) a = m;
    else b = m;
  }
  const floor = [...equal.floor];
  const cap = [...equal.cap];
  const eps = 1e-9;
  for (const s of open) {
    const x = share(b, s);
    floor[s] = Math.max(lo(s), Math.min(hi(s), Math.floor(x + eps)));
    cap[s] = Math.max(floor[s]!, Math.min(hi(s), Math.ceil(x - eps)));
  }
  const floors = open.reduce((acc, s) => acc + floor[s]!, 0);
  const caps = open.reduce((acc, s) => acc + cap[s]!, 0);
  if (floors > total || caps < total) return equal;
  return { floor, cap };
}
