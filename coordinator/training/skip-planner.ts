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
 * form the local trainer replays (`train:local --schedule-file`, recorded-schedule.ts). Each plan
 * is also saved to the run store (SkipPlanRecord) and read back on resume, so a restarted
 * coordinator serves the whole run's schedule.
 */
import { skipRules, stageCounts } from '../../shared/schedule/skip-paths.js';
import { randomSchedule } from '../../shared/schedule/skip-random.js';
import { collisionSchedule } from '../../shared/schedule/skip-collision.js';
import { unvisitedStages, type ScheduleRequest, type SchedulerKind } from '../../shared/schedule/skip-request.js';
import { SkipPlanAhead } from './skip-plan-ahead.js';
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

/**
 * Where applied plans persist (the run store's skip_paths table): written at commit, read back
 * when a coordinator resumes the run, so the recorded schedule outlives a restart.
 */
export interface SkipPlanRecord {
  save(iteration: number, plan: string): void;
  /** The plans applied before the iteration this coordinator starts at (JSON text as saved). */
  load(): { iteration: number; plan: string }[];
}

/** A stored plan, checked against the run's shape (a file is read back, not trusted): null if it does not fit. */
export function parseStoredPlan(text: string, nStages: number, microbatches: number): IterationPaths | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  const stage = (x: unknown) => Number.isInteger(x) && (x as number) >= 0 && (x as number) < nStages;
  if (typeof v !== 'object' || v === null) return null;
  const { vacant, paths } = v as { vacant?: unknown; paths?: unknown };
  if (!Array.isArray(vacant) || !vacant.every(stage)) return null;
  if (!Array.isArray(paths) || paths.length !== microbatches) return null;
  if (!paths.every((p) => Array.isArray(p) && p.length >= 2 && p.length <= nStages && p.every(stage))) return null;
  return { vacant: vacant as number[], paths: paths as number[][] };
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
  /** Wall ms the schedulers spent planning, in all (on the coordinator's loop, inside the iteration). */
  planMs = 0;
  /** Plans made (planMs / plans: the mean planning time a bench reports). */
  plans = 0;
  /** Plans taken from the worker that planned them during the previous iteration. */
  aheadPlans = 0;
  private readonly ahead = new SkipPlanAhead();

  constructor(readonly opts: SkipPlannerOptions, private readonly record?: SkipPlanRecord) {
    // Throws a SkipRuleError for a ratio outside [0, 1).
    skipRules({ nStages: opts.nStages, skipRatio: opts.skipRatio });
    // A resumed run: the plans it applied before this coordinator (a row that does not fit is left out).
    for (const row of record?.load() ?? []) {
      const plan = Number.isSafeInteger(row.iteration) && row.iteration >= 0 ? parseStoredPlan(row.plan, opts.nStages, opts.microbatches) : null;
      if (!plan) continue;
      this.applied[row.iteration] = JSON.stringify(plan);
      this.last = plan;
    }
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
    const { req, key } = this.request(iteration, vacant, this.last);
    const t0 = performance.now();
    const paths = this.opts.scheduler === 'random' ? randomSchedule(req) : this.collision(req, costs());
    this.planMs += performance.now() - t0;
    this.plans++;
    return { vacant: [...req.rules.vacant], paths };
  }

  /**
   * plan(), with the collision-aware search taken from the worker that planned it during the
   * previous iteration when the request is the same (skip-plan-ahead.ts); then starts planning
   * iteration + 1 in the worker, as if this plan is applied. planMs counts only loop time.
   */
  async planned(iteration: number, vacant: readonly number[], costs: () => StageCosts): Promise<IterationPaths | null> {
    if (!this.active) return null;
    if (this.opts.scheduler !== 'collision') return this.plan(iteration, vacant, costs);
    const { req, key } = this.request(iteration, vacant, this.last);
    const t0 = performance.now();
    const ahead = await this.ahead.take(key);
    const plan = ahead ? { vacant: [...req.rules.vacant], paths: ahead } : this.plan(iteration, vacant, costs);
    if (ahead) {
      this.planMs += performance.now() - t0;
      this.plans++;
      this.aheadPlans++;
    }
    const c = costs();
    const next = this.request(iteration + 1, vacant, plan);
    this.ahead.start(next.key, { ...next.req, speed: c.forwardMs.map((f) => 1 / f) }, c);
    return plan;
  }

  /** Stops the planning worker. */
  close(): void {
    this.ahead.close();
  }

  /** Iteration `iteration`'s schedule request after `last` was applied, and a key naming it. */
  private request(iteration: number, vacant: readonly number[], last: IterationPaths | null) {
    const o = this.opts;
    const rules = skipRules({ nStages: o.nStages, skipRatio: o.skipRatio, vacant });
    const mustVisit = last ? unvisitedStages(last.paths, rules) : [];
    const req: ScheduleRequest = { rules, microbatches: o.microbatches, iteration, swap: o.swap, seed: o.seed, mustVisit };
    return { req, key: JSON.stringify([iteration, rules.vacant, mustVisit]) };
  }

  /** The collision-aware schedule, its per-stage bounds following the measured speed (skip-speed-coverage.ts). */
  private collision(req: ScheduleRequest, c: StageCosts): number[][] {
    return collisionSchedule({ ...req, speed: c.forwardMs.map((f) => 1 / f) }, c).orders;
  }

  /** Iteration `iteration` was applied with `plan`: it joins the record and sets the next mustVisit. */
  commit(iteration: number, plan: IterationPaths): void {
    this.last = plan;
    const text = JSON.stringify(plan);
    this.applied[iteration] = text;
    this.record?.save(iteration, text);
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
