/**
 * Training through a vacancy (SkipPipe, docs/skippipe.md#train-through-a-vacancy): with
 * `--skip-ratio > 0`, an intermediate stage with no tab is left out of the paths (skip-planner.ts)
 * instead of the run waiting for a volunteer; stages 0 and S-1 (embedding, head) still wait.
 *
 * While the run trains around it, the stage's pending weights (rebuilt when its last tab was lost,
 * or handed over) fall behind its neighbours', which keep learning: from the first iteration that
 * skips it the stage is *stale* (stage-table.ts markStale) and no tab takes it as it is. When a
 * volunteer waits for a stage (between iterations), the recovery strategy rebuilds the stage again
 * from its neighbours' current weights; the tab then takes it and the next iteration's paths visit it.
 */
import type { StageTable } from '../placement/stage-table.js';
import type { EventLog } from '../record/events-log.js';
import type { RecoveryLadder } from './collaborators.js';

export interface VacancySkipDeps {
  stages: Pick<StageTable, 'nStages' | 'replicas' | 'isRebuilding' | 'markStale' | 'staleStages'>;
  /** Tabs waiting for a stage (placement.ts waitingCount). */
  waiting: () => number;
  ladder: Pick<RecoveryLadder, 'stageLost'>;
  events: Pick<EventLog, 'add'>;
  /** Whether the run may train without vacant `stage` (skip-planner.ts canSkipVacant). */
  canSkip: (stage: number) => boolean;
}

export class VacancySkip {
  /** Per stage: the iteration from which it was skipped for want of a tab (absent: served). */
  private readonly since = new Map<number, number>();

  constructor(private deps: VacancySkipDeps) {}

  /** Stages with no tab now. */
  private vacant(): number[] {
    return Array.from({ length: this.deps.stages.nStages }, (_, s) => s).filter((s) => this.deps.stages.replicas(s).length === 0);
  }

  /**
   * Whether an iteration can run now: every stage is served, or every unserved one may be skipped
   * and is not being rebuilt right now (a rebuild reads its neighbours' weights).
   */
  canTrain(): boolean {
    return this.vacant().every((s) => this.deps.canSkip(s) && !this.deps.stages.isRebuilding(s));
  }

  /** The intermediate stages the next iteration trains around (no tab serves them). */
  skippable(): number[] {
    return this.vacant().filter((s) => this.deps.canSkip(s));
  }

  /** Iteration `iteration` trains around `vacant`: they are stale from now on (an event the first time). */
  skipping(vacant: readonly number[], iteration: number): void {
    for (const s of vacant) {
      if (this.since.has(s)) continue;
      this.since.set(s, iteration);
      this.deps.stages.markStale(s);
      this.deps.events.add('run', `stage ${s} has no volunteer: training goes on without it (skip paths) from iteration ${iteration}; it is rebuilt from its neighbours when one arrives`, { stage: s, iteration });
    }
    for (const s of [...this.since.keys()]) if (!vacant.includes(s) && this.deps.stages.replicas(s).length > 0) this.since.delete(s);
  }

  /** The stages skipped for want of a tab, with the iteration they have been skipped since. */
  skipped(): { stage: number; since: number }[] {
    return [...this.since.entries()].map(([stage, since]) => ({ stage, since })).sort((a, b) => a.stage - b.stage);
  }

  /**
   * Between iterations: with a volunteer waiting, every stale stage is rebuilt by the recovery
   * strategy from its neighbours' current weights (then placement hands it to the volunteer).
   */
  async rejoin(iteration: number): Promise<number[]> {
    if (this.deps.waiting() === 0) return [];
    const rebuilt: number[] = [];
    for (const s of this.deps.stages.staleStages()) {
      const since = this.since.get(s);
      this.deps.events.add('recovery', `stage ${s} rejoins the paths: a volunteer arrived; rebuilt from its neighbours' current weights after ${since === undefined ? '?' : iteration - since} skipped iteration(s)`, { stage: s, iteration });
      await this.deps.ladder.stageLost(s, { distrust: false });
      rebuilt.push(s);
    }
    return rebuilt;
  }
}
