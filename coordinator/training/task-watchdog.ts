/**
 * The watchdog over tasks out with tabs: a tab that answers pings but leaves a task unanswered
 * past its deadline is dropped as unresponsive. The deadline adapts to the task answer times of
 * the other tabs in the same kind of pass (answer-times.ts: a few times their p99, floor a few
 * seconds, cold 30 s before enough were measured: a WebGPU tab's first tasks compile their
 * kernels), never more than `--task-timeout`, so a silent tab holds a pass for seconds and a tab
 * that answers every task just under the deadline cannot raise it.
 */
import type { Volunteer } from '../tabs/registry.js';
import type { Task } from './task-book.js';
import { TASK_DEADLINE, type AnswerTimes } from './answer-times.js';

export interface TaskWatchdogDeps {
  times: AnswerTimes;
  /** The oldest task past its deadline (`deadlineOf(task, timesKey)`) in the pass that runs now, if any. */
  overdue: (deadlineOf: (t: Task, timesKey: string) => number, now: number) => Task | undefined;
  unresponsive: (v: Volunteer, why: string) => void;
}

export class TaskWatchdog {
  private timer: NodeJS.Timeout | null = null;

  constructor(private taskTimeoutMs: number, private deps: TaskWatchdogDeps) {}

  start(): void {
    this.timer = setInterval(() => this.check(), Math.min(250, Math.max(50, this.taskTimeoutMs / 4)));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Drops the tab holding the oldest overdue task, if any. */
  check(now = Date.now()): void {
    let deadline = 0;
    const t = this.deps.overdue((task, key) => (deadline = this.deadlineMs(key, task.to)), now);
    if (t) this.deps.unresponsive(t.to, `task ${t.meta.dir} mb ${t.meta.mb} hop ${t.meta.hop} unanswered for ${now - t.sentAt} ms (its deadline: ${deadline} ms)`);
  }

  /** How long `tab` may leave a task of a pass of kind `timesKey` unanswered now. */
  deadlineMs(timesKey: string, tab: Volunteer | null = null): number {
    return this.deps.times.deadline(timesKey, TASK_DEADLINE, this.taskTimeoutMs, tab);
  }
}
