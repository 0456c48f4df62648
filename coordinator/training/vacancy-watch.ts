/**
 * No silent wait (issue 22, item 5): how long each stage has waited for a volunteer, and an alert
 * once a wait passes `--vacancy-alert`. Every check sets `swarm_stage_vacant_seconds{stage}` (0
 * while served); a wait that passes the alert time adds an `alert` event and a log line once, and
 * the run's status carries the stage (the volunteer page says "stage 2 needs a volunteer", the
 * dashboard shows it); a stage served again ends the alert (an event, the status cleared).
 */
import type { SwarmMetrics } from '../record/metrics.js';
import type { EventLog } from '../record/events-log.js';
import type { Logger } from '../record/log.js';

export interface VacancyWatchDeps {
  nStages: number;
  /** The stage has no replica now. */
  isVacant: (stage: number) => boolean;
  metrics: SwarmMetrics;
  events: EventLog;
  log: Logger;
  /** The set of alerted stages changed (the run's status is broadcast again). */
  changed: () => void;
}

export class VacancyWatch {
  /** Since when each stage is vacant (null: served). */
  private readonly since: (number | null)[];
  private readonly alerted = new Set<number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(readonly alertMs: number, private deps: VacancyWatchDeps) {
    if (!(Number.isFinite(alertMs) && alertMs > 0)) throw new RangeError(`the vacancy alert time must be a positive number of ms, got ${alertMs}`);
    this.since = new Array<number | null>(deps.nStages).fill(null);
  }

  start(): void {
    this.check();
    this.timer = setInterval(() => this.check(), Math.min(1000, Math.max(20, this.alertMs / 4)));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Stages that have waited for a volunteer longer than the alert time, in stage order. */
  alerts(): number[] {
    return [...this.alerted].sort((a, b) => a - b);
  }

  /** Seconds stage `s` has waited for a volunteer (0 while served). */
  waitedSeconds(s: number, now = Date.now()): number {
    const t = this.since[s];
    return t === null || t === undefined ? 0 : (now - t) / 1000;
  }

  check(now = Date.now()): void {
    const { metrics, events, log } = this.deps;
    let changed = false;
    for (let s = 0; s < this.deps.nStages; s++) {
      if (!this.deps.isVacant(s)) {
        if (this.alerted.delete(s)) {
          changed = true;
          const waited = Math.round(this.waitedSeconds(s, now));
          events.add('alert', `stage ${s} is served again after waiting ${waited} s for a volunteer`, { stage: s, waitedSeconds: waited, resolved: true });
        }
        this.since[s] = null;
        metrics.stageVacantSeconds.set({ stage: String(s) }, 0);
        continue;
      }
      this.since[s] ??= now;
      const waited = this.waitedSeconds(s, now);
      metrics.stageVacantSeconds.set({ stage: String(s) }, waited);
      if (waited * 1000 >= this.alertMs && !this.alerted.has(s)) {
        this.alerted.add(s);
        changed = true;
        const msg = `stage ${s} needs a volunteer: the run has waited ${Math.round(waited)} s for one (--vacancy-alert ${Math.round(this.alertMs / 1000)} s)`;
        events.add('alert', msg, { stage: s, waitedSeconds: Math.round(waited) });
        log.warn({ stage: s, waitedSeconds: Math.round(waited) }, msg);
      }
    }
    if (changed) this.deps.changed();
  }
}
