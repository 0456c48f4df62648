/**
 * How fast each tab really is, measured on the coordinator's clock (never self-reported): the
 * service time of its tasks. A tab runs its tasks one at a time, so a task's service time is the
 * time from when the tab could start it (sent, or its previous result arrived, whichever is
 * later) to its result. An exponential moving average smooths it. Routing and placement read it.
 */
import type { Volunteer } from './registry.js';

/** Weight of the newest sample in the moving average. */
const ALPHA = 0.3;

interface Speed {
  /** Moving average of task service time, ms (null before the first result). */
  taskMs: number | null;
  /** When its last result arrived (coordinator clock, ms). */
  lastDone: number;
  /** Tasks sent and not answered yet. */
  queued: number;
  /** Tasks it completed (for the share of a stage's microbatches it takes). */
  done: number;
}

export class TabSpeeds {
  private speeds = new Map<Volunteer, Speed>();

  private of(v: Volunteer): Speed {
    let s = this.speeds.get(v);
    if (!s) {
      s = { taskMs: null, lastDone: 0, queued: 0, done: 0 };
      this.speeds.set(v, s);
    }
    return s;
  }

  sent(v: Volunteer): void {
    this.of(v).queued++;
  }

  /** A result of a task sent at `sentAt` arrived now. */
  answered(v: Volunteer, sentAt: number, now = Date.now()): void {
    const s = this.of(v);
    const sample = Math.max(0.01, now - Math.max(sentAt, s.lastDone));
    s.taskMs = s.taskMs === null ? sample : (1 - ALPHA) * s.taskMs + ALPHA * sample;
    s.lastDone = now;
    s.queued = Math.max(0, s.queued - 1);
    s.done++;
  }

  /** The tab's outstanding tasks were dropped (abandoned pass, tab lost). */
  clearQueue(v: Volunteer): void {
    const s = this.speeds.get(v);
    if (s) s.queued = 0;
  }

  forget(v: Volunteer): void {
    this.speeds.delete(v);
  }

  taskMs(v: Volunteer): number | null {
    return this.speeds.get(v)?.taskMs ?? null;
  }

  queued(v: Volunteer): number {
    return this.speeds.get(v)?.queued ?? 0;
  }

  done(v: Volunteer): number {
    return this.speeds.get(v)?.done ?? 0;
  }

  /**
   * The replica expected to finish a new task first: (queued + 1) x its task time. A tab not
   * measured yet counts as the group's median (or 1 ms when nobody is measured), so new tabs get
   * work and are measured.
   */
  pick(replicas: readonly Volunteer[]): Volunteer | undefined {
    if (replicas.length <= 1) return replicas[0];
    const typical = median(replicas.map((r) => this.taskMs(r)).filter((t): t is number => t !== null)) ?? 1;
    let best: Volunteer | undefined;
    let bestFinish = Infinity;
    for (const r of replicas) {
      const finish = (this.queued(r) + 1) * (this.taskMs(r) ?? typical);
      if (finish < bestFinish) {
        best = r;
        bestFinish = finish;
      }
    }
    return best;
  }

  /**
   * A group's time per task when its replicas share the work: 1 / sum(1 / t_r). Unmeasured
   * replicas (and `joining` tabs not in the group yet) count as the group's median, or as
   * `fallback` when nobody in the group is measured; null then when no fallback is given.
   * Infinity for a group with nobody in it.
   */
  groupTaskMs(replicas: readonly Volunteer[], opts: { fallback?: number; joining?: number } = {}): number | null {
    const typical = median(replicas.map((r) => this.taskMs(r)).filter((t): t is number => t !== null)) ?? opts.fallback;
    if (typical === undefined) return null;
    let rate = (opts.joining ?? 0) / typical;
    for (const r of replicas) rate += 1 / (this.taskMs(r) ?? typical);
    return rate > 0 ? 1 / rate : Infinity;
  }
}

export function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
