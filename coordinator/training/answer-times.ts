/**
 * How long the coordinator waits for a tab's answer, measured rather than fixed: the recent answer
 * times of each kind of question (a barrier's `grad_norm` or `step` per stage, the combine of a
 * stage's gradients, a pass's tasks) and a deadline of a few times their p99, never below a floor
 * of a few seconds (a loaded machine, a GC pause) and never above the configured timeout. Before a
 * kind has enough samples (a run's first iterations, a WebGPU tab compiling its kernels) the
 * deadline is the cold one. A bundle moving to or from the tab adds that bundle's time on the
 * slowest link allowed (ask-stage.ts's transferTimeoutMs), so a slow link is not taken for silence.
 * A tab's deadline is read from the other tabs' answers when they gave enough (all answers
 * otherwise), so a tab that answers just inside its deadline cannot raise it answer by answer.
 * So a tab that computes its tasks but never answers the barrier holds the run a few seconds on
 * a small model (issue 22, item 4), and a small multiple of the real answer time on a large one.
 */
import { transferTimeoutMs } from '../tabs/ask-stage.js';

export interface DeadlineRule {
  /** The deadline is this many times the recent p99 ... */
  factor: number;
  /** ... but never less than this (ms) ... */
  floorMs: number;
  /** ... and until `minSamples` answers were measured, this (ms; still capped by the configured timeout). */
  coldMs: number;
  minSamples: number;
  /** Answers kept per kind (the most recent). */
  window: number;
}

/** Barrier answers (grad_norm, step, the combine of a stage's gradients). */
export const BARRIER_DEADLINE: DeadlineRule = { factor: 5, floorMs: 3_000, coldMs: 30_000, minSamples: 5, window: 200 };
/**
 * Task results (sent to answered, queueing behind the tab's earlier tasks included). Looser than
 * the barrier's: task times differ by stage (the head's are the longest) and by tab (a slow GPU
 * queues the most work), so a multiple of the others' p99 must not drop an honest slow tab, and a
 * WebGPU tab's first tasks compile their kernels: 20x the p99, at least 30 s (as before issue 22).
 */
export const TASK_DEADLINE: DeadlineRule = { factor: 20, floorMs: 30_000, coldMs: 30_000, minSamples: 20, window: 500 };

/** The q-quantile (0..1) of `xs` (nearest rank); null for none. */
export function quantile(xs: readonly number[], q: number): number | null {
  if (xs.length === 0) return null;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/**
 * The deadline (ms) for an answer of a kind whose recent answer times are `samples`: `rule`'s
 * multiple of their p99 within [floor, ceiling], or the cold deadline before enough samples; plus
 * the time of `movingBytes` on the slowest link allowed.
 */
export function deadlineMs(samples: readonly number[], rule: DeadlineRule, ceilingMs: number, movingBytes = 0): number {
  const p99 = samples.length >= rule.minSamples ? quantile(samples, 0.99) : null;
  const base = p99 === null ? Math.min(ceilingMs, rule.coldMs) : Math.min(ceilingMs, Math.max(rule.floorMs, Math.ceil(rule.factor * p99)));
  return movingBytes > 0 ? transferTimeoutMs(base, movingBytes) : base;
}

/** The recent answer times of each kind of question: one owner (the scheduler), read by the waits. */
export class AnswerTimes {
  /** Each answer remembers who gave it by a number, so a gone tab (and its socket) is never kept alive by its answers. */
  private readonly samples = new Map<string, { ms: number; from: number }[]>();
  private readonly ids = new WeakMap<object, number>();
  private nextId = 1;

  private idOf(from: object | null): number {
    if (from === null) return 0;
    let id = this.ids.get(from);
    if (id === undefined) this.ids.set(from, (id = this.nextId++));
    return id;
  }

  constructor(private readonly window = Math.max(BARRIER_DEADLINE.window, TASK_DEADLINE.window)) {}

  /** An answer of kind `key` from `from` took `ms` (ignored unless finite and >= 0). */
  record(key: string, ms: number, from: object | null = null): void {
    if (!(Number.isFinite(ms) && ms >= 0)) return;
    let xs = this.samples.get(key);
    if (!xs) this.samples.set(key, (xs = []));
    xs.push({ ms, from: this.idOf(from) });
    if (xs.length > this.window) xs.splice(0, xs.length - this.window);
  }

  /** The most recent `n` answer times of kind `key`, leaving out those of `excluding` if any. */
  of(key: string, n = this.window, excluding: object | null = null): number[] {
    const skip = excluding === null ? -1 : this.idOf(excluding);
    return (this.samples.get(key) ?? []).slice(-n).filter((x) => x.from !== skip).map((x) => x.ms);
  }

  /**
   * The deadline for `tab`'s answer of kind `key` (see deadlineMs): from the other tabs' recent
   * answers when they gave at least `rule.minSamples`, else from everyone's.
   */
  deadline(key: string, rule: DeadlineRule, ceilingMs: number, tab: object | null = null, movingBytes = 0): number {
    const others = this.of(key, rule.window, tab);
    return deadlineMs(others.length >= rule.minSamples ? others : this.of(key, rule.window), rule, ceilingMs, movingBytes);
  }
}
