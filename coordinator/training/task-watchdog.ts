/**
 * The watchdog over tasks out with tabs: a tab that answers pings but leaves a task unanswered
 * too long is dropped as unresponsive. Too long is the configured task timeout, but no more than
 * a multiple of the swarm's median task time (with a floor for a WebGPU tab's first tasks, which
 * compile their kernels), so a tab that answers every task just under the fixed timeout cannot
 * hold the run at that pace.
 */
import { median, type TabSpeeds } from '../tabs/tab-speed.js';
import type { StageTable } from '../placement/stage-table.js';
import type { Volunteer } from '../tabs/registry.js';
import type { Task } from './task-book.js';

/** A task may take at most this many times the swarm's median task time ... */
const TASK_DEADLINE_FACTOR = 20;
/** ... but never less than this. */
const TASK_DEADLINE_FLOOR_MS = 30_000;

export interface TaskWatchdogDeps {
  stages: StageTable;
  speeds: TabSpeeds;
  /** The oldest task unanswered for at least `deadlineMs` in the pass that runs now, if any. */
  overdue: (deadlineMs: number, now: number) => Task | undefined;
  unresponsive: (v: Volunteer, why: string) => void;
}

export class TaskWatchdog {
  private timer: NodeJS.Timeout | null = null;

  constructor(private taskTimeoutMs: number, private deps: TaskWatchdogDeps) {}

  start(): void {
    this.timer = setInterval(() => this.check(), Math.min(1000, Math.max(50, this.taskTimeoutMs / 4)));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Drops the tab holding the oldest overdue task, if any. */
  check(now = Date.now()): void {
    const t = this.deps.overdue(this.deadlineMs(), now);
    if (t) this.deps.unresponsive(t.to, `task ${t.meta.dir} mb ${t.meta.mb} hop ${t.meta.hop} unanswered for ${now - t.sentAt} ms`);
  }

  /** How long a task may stay unanswered now. */
  deadlineMs(): number {
    const { stages, speeds } = this.deps;
    const med = median(stages.allReplicas().map((v) => speeds.taskMs(v)).filter((t): t is number => t !== null));
    return med === null ? this.taskTimeoutMs : Math.min(this.taskTimeoutMs, Math.max(TASK_DEADLINE_FLOOR_MS, TASK_DEADLINE_FACTOR * med));
  }
}
