/**
 * SkipPipe in the swarm (docs/skippipe.md): which block order every training microbatch of an
 * iteration follows. With `--skip-ratio r > 0`, or an intermediate stage vacant (no tab, no
 * spare) while r > 0, each iteration's paths come from the shared schedulers
 * (shared/schedule/skip-random.ts, skip-collision.ts; `--skip-schedule random|collision`), under
 * the rules of that iteration (skip-paths.ts skipRules with the vacant stages), the stages the
 * previous iteration left out named as mustVisit, the collision-aware one fed with the measured
 * stage costs (skip-costs.ts). With r = 0 it plans nothing: today's full (CheckFree+) paths.
 *
 * The planner owns the run's recorded schedule: the plan of every *applied* iteration, in the
 * form the local trainer replays (`train:local --schedule-file`, recorded-schedule.ts).
 */
import { skipRules, stageCounts } from '../../shared/schedule/skip-paths.js';
import { randomSchedule } from '../../shared/schedule/skip-random.js';
import { collisionSchedule } from '../../shared/schedule/skip-collision.js';
import { unvisitedStages, type SchedulerKind } from '../../shared/schedule/skip-request.js';
import type { StageCosts } from '../../shared/schedule/skip-timing.js';
import type { RecordedSchedule } from '../../shared/schedule/recorded-schedule.js';

export interface SkipPlannerOptions {
  nStages: number;
  microbatches: number;
  seed: number;
  /** CheckFree+'s swapped order on odd swap counters. */
  swap: boolean;
  skipRatio: number;
  scheduler: SchedulerKind;
}

/** One iteration's plan: the vacant stages its rules avoided and each microbatch's block order. */
export interface IterationPaths {
  vacant: number[];
  paths: number[][];
}

export class SkipPlanner {
  /** The last applied iteration's paths (its unvisited stages are the next mustVisit). */
  private last: IterationPaths | null = null;
  /**
   * Applied iterations' plans as JSON text, by iteration (a resumed run starts with holes): a
   * string is a few bytes per stage visit, where nested arrays of numbers would cost several
   * times that over a long run.
   */
  private readonly applied: (string | undefined)[] = [];

  constructor(readonly opts: SkipPlannerOptions) {
    // Throws a SkipRuleError for a ratio outside [0, 1).
    skipRules({ nStages: opts.nStages, skipRatio: opts.skipRatio });
  }

  /** True when training paths skip stages (r > 0). */
  get active(): boolean {
    return this.opts.skipRatio > 0;
  }

  /** Whether an intermediate stage with no tab lets the run go on without it (stages 0 and S-1 never). */
  canSkipVacant(stage: number): boolean {
    return this.active && stage > 0 && stage < this.opts.nStages - 1;
  }

  /**
   * The paths of iteration `iteration` with `vacant` intermediate stages unserved; null when
   * inactive (full paths). `costs` is only asked for by the collision-aware scheduler.
   */
  plan(iteration: number, vacant: readonly number[], costs: () => StageCosts): IterationPaths | null {
    if (!this.active) return null;
    const o = this.opts;
    const rules = skipRules({ nStages: o.nStages, skipRatio: o.skipRatio, vacant });
    const mustVisit = this.last ? unvisitedStages(this.last.paths, rules) : [];
    const req = { rules, microbatches: o.microbatches, iteration, swap: o.swap, seed: o.seed, mustVisit };
    // The collision-aware schedule's per-stage bounds follow the measured speed (skip-speed-coverage.ts).
    const collision = () => {
      const c = costs();
      return collisionSchedule({ ...req, speed: c.forwardMs.map((f) => 1 / f) }, c).orders;
    };
    const paths = o.scheduler === 'random' ? randomSchedule(req) : collision();
    return { vacant: [...rules.vacant], paths };
  }

  /** Iteration `iteration` was applied with `plan`: it joins the record and sets the next mustVisit. */
  commit(iteration: number, plan: IterationPaths): void {
    this.last = plan;
    this.applied[iteration] = JSON.stringify(plan);
  }

  /** Microbatches each stage ran in `plan` (stage 0 and S-1: all of them). */
  visits(plan: IterationPaths): number[] {
    return stageCounts(plan.paths, this.opts.nStages);
  }

  /**
   * The applied iterations from 0 on, as a recorded schedule the local trainer replays; it stops
   * at the first iteration this coordinator did not plan (a resumed run: nothing before it).
   */
  recorded(): RecordedSchedule {
    const iterations: IterationPaths[] = [];
    for (const p of this.applied) {
      if (!p) break;
      iterations.push(JSON.parse(p) as IterationPaths);
    }
    const o = this.opts;
    return { version: 1, nStages: o.nStages, microbatches: o.microbatches, skipRatio: o.skipRatio, swap: o.swap, iterations };
  }
}
