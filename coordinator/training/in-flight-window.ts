/**
 * How many microbatches a training pass keeps in flight (the scheduler's window).
 *
 * 1F1B's warm-up depth, S stages x the widest replica group, keeps every stage busy only when
 * a hop costs nothing but compute. On home links a hop also costs its round trip: the input's
 * way down to the tab and the output's way back up (latency both ways, transfer, the relay).
 * By Little's law the pipeline needs (cycle time of one microbatch) / (time the bottleneck stage
 * spends per microbatch) microbatches in flight to keep its bottleneck busy:
 *
 *   cycle      = sum over stages of 2 (t_s + L_s)      (one forward and one backward task each)
 *   bottleneck = max over stages of 2 t_s / k_s         (k_s replicas share a stage's tasks)
 *   window     = ceil(cycle / bottleneck)
 *
 * With equal stages (t, L, k everywhere) that is S k (1 + L / t). The window is never below the
 * 1F1B depth (the pipeline must fill), never above M (the microbatches there are), and at most
 * `maxPerTab` x the narrowest group's replicas (unless that is below the depth): every
 * microbatch in flight keeps a stash of activations on each tab it passed until its backward
 * (`base`: about 115 MiB per microbatch, docs/benchmarks.md), so overlap makes a tab hold at
 * most about `maxPerTab` stashes (a single-replica stage: exactly). Before every stage is
 * measured the window is the 1F1B depth.
 *
 * Where the figures come from (`HopTimes`): only tasks sent to a tab with nothing outstanding,
 * so the time from send to result, on the coordinator's clock, is the hop's round trip plus the
 * tab's compute and contains no queueing (queueing would feed back: a larger window queues more
 * and would look like more latency). The split between the two uses the tab's own `computeMs`,
 * clamped to [0, that time]. A tab can lie about it, but only within the bounds above: claiming
 * no compute drives the window to the cap (the memory bound the operator chose), claiming all
 * of it drives it to the 1F1B depth (what the scheduler did before it measured anything).
 * Medians over a stage's replicas keep one tab from setting its stage's figures.
 *
 * Numerics: each microbatch's loss and gradient are the same whatever else is in flight. What
 * the window (like the links' timing, already) can change is the order in which a tab adds up
 * its microbatches' gradients, i.e. float rounding in the last bits; the swarm tests compare
 * with the local trainer to 1e-4 relative.
 */
import { median } from '../tabs/tab-speed.js';

/** Default `--max-in-flight`: stashes per tab the window may add up to (base: ~0.9 GiB of stash). */
export const DEFAULT_MAX_IN_FLIGHT = 8;

/** Weight of the newest sample in the moving averages. */
const ALPHA = 0.3;

export interface StageTiming {
  /** Replicas serving the stage (its group). */
  replicas: number;
  /** Typical compute of one task on one replica, ms; null = not measured yet. */
  computeMs: number | null;
  /** Typical round trip of one hop outside compute (latency both ways, transfer, relay), ms; null = not measured yet. */
  hopMs: number | null;
}

export interface WindowInputs {
  stages: readonly StageTiming[];
  /** Microbatches in the pass (M). */
  microbatches: number;
  /** `--max-in-flight`: most microbatches in flight per replica of the narrowest stage. */
  maxPerTab: number;
}

export interface InFlightWindow {
  /** Microbatches the pass keeps in flight. */
  size: number;
  /** 1F1B's warm-up depth: stages x widest group. */
  depth: number;
  /** What the measurements ask for (Little's law), before the bounds; null = not everything measured. */
  wanted: number | null;
  /** The memory bound: maxPerTab x narrowest group (never below the depth). */
  cap: number;
}

export function inFlightWindow({ stages, microbatches, maxPerTab }: WindowInputs): InFlightWindow {
  const S = Math.max(1, stages.length);
  const sizes = stages.map((s) => Math.max(1, s.replicas));
  const widest = Math.max(1, ...sizes);
  const narrowest = Math.min(widest, ...sizes);
  const depth = S * widest;
  const cap = Math.max(depth, Math.max(1, Math.floor(maxPerTab)) * narrowest);
  let wanted: number | null = null;
  if (stages.length > 0 && stages.every((s) => s.computeMs !== null && s.hopMs !== null)) {
    let cycle = 0;
    let bottleneck = 0;
    for (const [i, s] of stages.entries()) {
      const t = Math.max(0, s.computeMs!);
      cycle += 2 * (t + Math.max(0, s.hopMs!));
      bottleneck = Math.max(bottleneck, (2 * t) / sizes[i]!);
    }
    // No compute measured at all: the round trips are everything, so as many as allowed.
    wanted = bottleneck > 0 ? Math.ceil(cycle / bottleneck - 1e-9) : Infinity;
  }
  const size = Math.max(1, Math.min(Math.max(1, microbatches), cap, Math.max(depth, wanted ?? depth)));
  return { size, depth, wanted, cap };
}

interface Timing {
  computeMs: number;
  hopMs: number;
}

/**
 * Per tab: moving averages of compute and of the hop's round trip outside compute, from tasks
 * that found the tab idle (see the module comment). `timings` gives each stage's medians.
 */
export class HopTimes {
  private times = new Map<object, Timing>();

  /**
   * A task sent to an idle tab came back `responseMs` after it was sent (coordinator clock);
   * the tab says it computed for `reportedComputeMs`.
   */
  record(tab: object, responseMs: number, reportedComputeMs: number): void {
    const response = Math.max(0, responseMs);
    const compute = Math.min(response, Math.max(0, Number.isFinite(reportedComputeMs) ? reportedComputeMs : 0));
    const hop = response - compute;
    const t = this.times.get(tab);
    if (!t) this.times.set(tab, { computeMs: compute, hopMs: hop });
    else {
      t.computeMs = (1 - ALPHA) * t.computeMs + ALPHA * compute;
      t.hopMs = (1 - ALPHA) * t.hopMs + ALPHA * hop;
    }
  }

  forget(tab: object): void {
    this.times.delete(tab);
  }

  of(tab: object): Timing | undefined {
    return this.times.get(tab);
  }

  /** One stage's figures: medians over its measured replicas (null while none is measured). */
  stageTiming(replicas: readonly object[]): StageTiming {
    const measured = replicas.map((r) => this.times.get(r)).filter((t): t is Timing => t !== undefined);
    return { replicas: replicas.length, computeMs: median(measured.map((t) => t.computeMs)), hopMs: median(measured.map((t) => t.hopMs)) };
  }
}
