/**
 * The resume window of a restarted coordinator (see resume.ts for the rules): for a while after
 * start, tabs of the previous run that come back with their stage reclaim it and keep their
 * weights; vacant stages are not handed to newcomers meanwhile. At the end of the window the run
 * continues from the step count the returning tabs agree on, and every stage nobody reclaimed is
 * rebuilt by the recovery strategy; if nobody came back a new run starts from the seed.
 */
import type { Volunteer } from '../tabs/registry.js';
import type { StageTable } from '../placement/stage-table.js';
import type { Placement } from '../placement/placement.js';
import type { EventLog } from '../record/events-log.js';
import { decideResume, type ResumeClaim } from './resume.js';
import type { RunProgress } from '../training/run-progress.js';

export interface ResumeWindowDeps {
  stages: StageTable;
  placement: Placement;
  events: EventLog;
  runId: () => string;
  /** The stored proof of an assignment: whether `token` was handed out for `stage` of this run. */
  verifyClaim: (v: Volunteer, stage: number, token: string) => boolean;
  isConnected: (v: Volunteer) => boolean;
  /** Where the run is: the window moves it to the iteration the returning tabs agree on. */
  progress: RunProgress;
  /** Nobody came back: start a new run from the seed. */
  startNewRun: () => string;
  /** Rebuild a stage nobody reclaimed (the recovery strategy). */
  rebuild: (stage: number) => Promise<void>;
  /**
   * Nobody came back: restore every stage from the run's last checkpoint, when the strategy keeps
   * one (sets every stage's pending state and the iteration); returns its iteration or null.
   */
  restoreWithoutTabs: () => number | null;
  strategy: () => string;
  announceGroup: (stage: number) => void;
  kick: () => void;
}

export class ResumeWindow {
  private claims: ResumeClaim[] = [];
  private timer: NodeJS.Timeout | null = null;
  private open = true;

  constructor(private recorded: number, private waitMs: number, private deps: ResumeWindowDeps) {
    deps.placement.holdVacancies();
    deps.progress.moveTo(recorded);
  }

  get active(): boolean {
    return this.open;
  }

  start(): void {
    this.deps.events.add('run', `resuming run ${this.deps.runId()} from iteration ${this.recorded}: waiting up to ${this.waitMs} ms for its tabs`);
    this.timer = setTimeout(() => void this.finish(), this.waitMs);
  }

  cancel(): void {
    this.open = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** A tab of the previous run is back with its stage: it keeps it (no weights move). */
  claim(v: Volunteer): boolean {
    const r = v.caps.resume;
    const { stages } = this.deps;
    if (!this.open || !r || r.runId !== this.deps.runId() || r.stage >= stages.nStages) return false;
    // Proven claims only: the assignment's secret, and a step count the store recorded (or one
    // more: a crash between the step and its record).
    if (!this.deps.verifyClaim(v, r.stage, r.token) || (r.iteration !== this.recorded && r.iteration !== this.recorded + 1)) {
      this.deps.events.add('rejected', `${v.id} claimed stage ${r.stage} of run ${this.deps.runId()} at ${r.iteration} steps without proof; it joins as a newcomer`, {
        volunteer: v.id,
        stage: r.stage,
        reason: 'resume_claim',
      });
      return false;
    }
    this.claims.push({ volunteer: v, stage: r.stage, iteration: r.iteration });
    this.deps.events.add('join', `${v.id} reclaimed stage ${r.stage} of run ${this.deps.runId()} (${r.iteration} steps applied)`, {
      volunteer: v.id,
      stage: r.stage,
      iteration: r.iteration,
    });
    const claimed = new Set(this.claims.map((c) => c.stage));
    if (claimed.size === stages.nStages) void this.finish();
    return true;
  }

  /** End of the window: continue from the tabs that came back, rebuild the rest. */
  async finish(): Promise<void> {
    if (!this.open) return;
    this.cancel();
    const { stages, placement, events } = this.deps;
    const live = this.claims.filter((c) => this.deps.isConnected(c.volunteer));
    const d = decideResume(stages.nStages, live);
    const fromCheckpoint = d.iteration === null ? this.deps.restoreWithoutTabs() : null;
    if (fromCheckpoint !== null) {
      events.add('run', `no tab of run ${this.deps.runId()} came back within ${this.waitMs} ms: resumed it from its checkpoint at iteration ${fromCheckpoint} (every stage restored from disk)`, {
        iteration: fromCheckpoint,
        checkpoint: true,
      });
    } else if (d.iteration === null) {
      const old = this.deps.runId();
      const id = this.deps.startNewRun();
      this.deps.progress.moveTo(0);
      events.add('run', `no tab of run ${old} came back within ${this.waitMs} ms: starting run ${id} from the seed`);
    } else {
      this.deps.progress.moveTo(d.iteration);
      for (const c of d.kept) stages.adopt(c.stage, c.volunteer);
      for (const stage of new Set(d.kept.map((c) => c.stage))) this.deps.announceGroup(stage);
      // A stale step count: the tab holds other weights; it waits for a stage like a newcomer.
      for (const c of live) if (!d.kept.includes(c)) placement.enqueue(c.volunteer);
      for (const stage of d.rebuild) await this.deps.rebuild(stage);
      // The checkpoint baseline rebuilds by rolling the whole run back: say where it really continues.
      const now = this.deps.progress.iteration;
      const at = now === d.iteration ? `${d.iteration}` : `${now} (rolled back from ${d.iteration})`;
      events.add(
        'run',
        `resumed run ${this.deps.runId()} at iteration ${at}: stages ${[...new Set(d.kept.map((c) => c.stage))].sort().join(', ') || 'none'} kept their weights` +
          (d.rebuild.length ? `; stages ${d.rebuild.join(', ')} rebuilt by ${this.deps.strategy()}` : ''),
        { iteration: now, kept: d.kept.map((c) => c.stage), rebuilt: d.rebuild },
      );
    }
    // Tabs that came back for nothing (no iteration agreed) wait for a stage too.
    if (d.iteration === null) for (const c of live) placement.enqueue(c.volunteer);
    placement.releaseVacancies();
    await placement.fillVacancies();
    this.deps.kick();
  }
}
