/**
 * Where the local trainer's skip paths come from, iteration by iteration: a recorded schedule
 * (replayed as the swarm ran it), or one drawn by the random or the collision-aware scheduler
 * (shared/schedule) from the run's settings and the given stage costs. Stages that sat out an
 * iteration are named to the next one (mustVisit), as the coordinator will do. Everything it hands
 * out is kept, so the run can be written back as a recorded schedule.
 */
import { skipRules } from '../shared/schedule/skip-paths.js';
import { randomSchedule } from '../shared/schedule/skip-random.js';
import { collisionSchedule } from '../shared/schedule/skip-collision.js';
import { unvisitedStages, type SchedulerKind } from '../shared/schedule/skip-request.js';
import type { StageCosts } from '../shared/schedule/skip-timing.js';
import type { RecordedSchedule } from '../shared/schedule/recorded-schedule.js';

export interface SkipScheduleOptions {
  nStages: number;
  microbatches: number;
  seed: number;
  swap: boolean;
  skipRatio: number;
  scheduler: SchedulerKind;
  /** The collision-aware scheduler's measured numbers (default: equal stages, backward 2x, no link time). */
  costs?: StageCosts;
  /** Replay this instead of drawing. */
  recorded?: RecordedSchedule;
}

/** Equal stages: forward 1, backward 2, links 0. */
export function equalCosts(nStages: number): StageCosts {
  return { forwardMs: new Array(nStages).fill(1), backwardMs: new Array(nStages).fill(2), linkMs: Array.from({ length: nStages }, () => new Array(nStages).fill(0)) };
}

export class SkipScheduleSource {
  private readonly used: { vacant: number[]; paths: number[][] }[] = [];
  private lastOrders: number[][] | null = null;

  constructor(private readonly o: SkipScheduleOptions) {
    const r = o.recorded;
    if (r && (r.nStages !== o.nStages || r.microbatches !== o.microbatches)) {
      throw new Error(`the recorded schedule is for ${r.nStages} stages x ${r.microbatches} microbatches, the run has ${o.nStages} x ${o.microbatches}`);
    }
  }

  /** True when iterations follow skip paths (a recorded schedule, or a skip ratio above 0). */
  get active(): boolean {
    return this.o.recorded !== undefined || this.o.skipRatio > 0;
  }

  /** The block orders of iteration `iteration` (from 0), one per microbatch; null for today's full paths. */
  ordersFor(iteration: number): number[][] | null {
    const o = this.o;
    let orders: number[][];
    if (o.recorded) {
      const it = o.recorded.iterations[iteration];
      if (!it) throw new Error(`the recorded schedule holds ${o.recorded.iterations.length} iterations; iteration ${iteration} is not in it`);
      orders = it.paths.map((p) => [...p]);
      this.used[iteration] = { vacant: [...it.vacant], paths: orders };
      return orders;
    }
    if (o.skipRatio <= 0) return null;
    const rules = skipRules({ nStages: o.nStages, skipRatio: o.skipRatio });
    const req = { rules, microbatches: o.microbatches, iteration, swap: o.swap, seed: o.seed, mustVisit: this.lastOrders ? unvisitedStages(this.lastOrders, rules) : [] };
    orders = o.scheduler === 'random' ? randomSchedule(req) : collisionSchedule(req, o.costs ?? equalCosts(o.nStages)).orders;
    this.lastOrders = orders;
    this.used[iteration] = { vacant: [], paths: orders };
    return orders;
  }

  /** What this run followed so far, as a recorded schedule (null when it ran full paths). */
  record(): RecordedSchedule | null {
    if (!this.active) return null;
    return { version: 1, nStages: this.o.nStages, microbatches: this.o.microbatches, skipRatio: this.o.recorded?.skipRatio ?? this.o.skipRatio, swap: this.o.swap, iterations: this.used.filter(Boolean) };
  }
}
