/**
 * The random skip schedule: the baseline of the reference's experiments ("random skipping"),
 * obeying the same rules as the collision-aware scheduler (skip-paths.ts): every microbatch gets a
 * uniformly drawn in-order path of `rules.visit` stages (CheckFree+'s partners included, its pairs
 * then swapped), and the per-stage quotas keep every open intermediate between its floor and cap.
 *
 * Quotas: each open intermediate gets its least number of visits (request scheduleBounds), the visits
 * left over go one each to randomly drawn other stages (never above the cap). Microbatch by
 * microbatch, a stage whose quota equals the microbatches left must be taken, the rest of the
 * path is drawn from stages with quota left, and a draw that breaks the jump rule is drawn again.
 * Deterministic given (seed, iteration). With nothing skipped (skip ratio 0, no vacancy) it is
 * today's schedule: paths.ts's full paths, CheckFree+'s swaps included.
 */
import { mulberry32 } from '../model/rng.js';
import { applyCheckFreeSwap, checkPath, checkSchedule } from './skip-paths.js';
import { drawSeed, fullSchedule, microbatchPlans, scheduleBounds, UNSWAPPED, type MicrobatchPlan, type ScheduleRequest } from './skip-request.js';

const ATTEMPTS = 200;
const DRAWS_PER_PATH = 200;

function shuffle<T>(xs: T[], rand: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

/** One iteration's block orders, one per microbatch, drawn at random under the rules. */
export function randomSchedule(req: ScheduleRequest): number[][] {
  const { rules, microbatches: M } = req;
  const S = rules.nStages;
  const rand = mulberry32(drawSeed(req.seed, req.iteration, 1));
  const plans = microbatchPlans(req);
  if (rules.visit === S) return fullSchedule(req);
  const open = Array.from({ length: Math.max(0, S - 2) }, (_, i) => i + 1).filter((s) => !rules.vacant.includes(s));
  const inner = rules.visit - 2;
  const bounds = scheduleBounds(req);
  const least = bounds.floor;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const quota = [...least];
    let extra = M * inner - open.reduce((a, s) => a + quota[s]!, 0);
    for (const s of shuffle([...open], rand)) {
      if (extra <= 0) break;
      if (quota[s]! < bounds.cap[s]!) {
        quota[s]!++;
        extra--;
      }
    }
    if (extra > 0) continue;
    const orders: number[][] = [];
    /** A legal path for microbatch `mb` with CheckFree+ plan `plan` within the quotas, or null. */
    const drawPath = (mb: number, plan: MicrobatchPlan): number[] | null => {
      const left = M - mb;
      // Quota the later microbatches' required stages (CheckFree+'s partners) will take.
      const laterRequired = (st: number) => plans.slice(mb + 1).filter((p) => p.required.includes(st)).length;
      const forced = new Set([...plan.required, ...open.filter((st) => quota[st]! >= left)]);
      if ([...forced].some((st) => quota[st]! - laterRequired(st) <= 0) || forced.size > inner) return null;
      const pool = open.filter((st) => !forced.has(st) && quota[st]! - laterRequired(st) > 0);
      for (let draw = 0; draw < DRAWS_PER_PATH; draw++) {
        const chosen = [...forced, ...shuffle([...pool], rand).slice(0, inner - forced.size)];
        if (chosen.length !== inner) return null;
        const order = [0, ...chosen.sort((a, b) => a - b), S - 1];
        const swapped = applyCheckFreeSwap(order, plan.pairs, S);
        if (!checkPath(swapped, rules)) return swapped;
      }
      return null;
    };
    for (let mb = 0; mb < M && orders.length === mb; mb++) {
      const order = drawPath(mb, plans[mb]!) ?? drawPath(mb, UNSWAPPED);
      if (!order) break;
      for (const st of order) if (st > 0 && st < S - 1) quota[st]!--;
      orders.push(order);
    }
    if (orders.length === M && !checkSchedule(orders, rules, M, bounds)) return orders;
  }
  // mustVisit is best effort: a stage that sat out may not fit this iteration's paths.
  if (req.mustVisit?.length) return randomSchedule({ ...req, mustVisit: [] });
  // Last resort: this iteration runs without CheckFree+'s swaps.
  if (req.swap) return randomSchedule({ ...req, swap: false });
  throw new Error(`no random skip schedule found for ${M} microbatches under the rules (S ${S}, visit ${rules.visit}, vacant ${rules.vacant.join(',') || 'none'})`);
}
