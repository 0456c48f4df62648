/**
 * Where the run is: the iteration counter, the last losses and gradient norms, and the record of
 * completed iterations. The one owner of that state: the scheduler completes iterations, a resume
 * or a checkpoint rollback moves the counter, everyone else reads.
 */
import type { GradNorms } from '../../shared/model/stage.js';
import type { IterationRecord } from '../../shared/protocol/operator.js';
import type { SwarmMetrics } from '../record/metrics.js';

/** Completed iterations kept in memory (SQLite keeps them all). */
const MAX_HISTORY = 100_000;

export class RunProgress {
  private current = 0;
  readonly history: IterationRecord[] = [];
  /** Each stage's gradient norms of the last step (CheckFree weights its average by them). */
  lastNorms: (GradNorms | null)[];
  lastTrainLoss: number | null = null;
  lastValLoss: number | null = null;

  constructor(readonly nStages: number, private metrics: SwarmMetrics) {
    this.lastNorms = Array.from({ length: nStages }, () => null);
  }

  /** The number of iterations applied so far (the next iteration's index). */
  get iteration(): number {
    return this.current;
  }

  /**
   * Every stage stepped: `iteration` iterations are applied now, with this mean loss and these
   * norms (null: a stage no microbatch visited, SkipPipe, which did not step and keeps its last norms).
   */
  applied(iteration: number, trainLoss: number, norms: (GradNorms | null)[]): void {
    this.moveTo(iteration);
    this.lastTrainLoss = trainLoss;
    this.lastNorms = norms.map((n, s) => n ?? this.lastNorms[s] ?? null);
  }

  /** The applied iteration's record (losses, timings) is complete. */
  record(r: IterationRecord): void {
    this.history.push(r);
    if (this.history.length > MAX_HISTORY) this.history.shift();
  }

  /**
   * The counter moves without a recorded iteration: a step applied by the surviving stages of an
   * abandoned iteration, a resumed run, a checkpoint rollback.
   */
  moveTo(iteration: number): void {
    this.current = iteration;
    this.metrics.iteration.set(iteration);
  }

  /** A validation loss was measured on the current weights. */
  validated(loss: number): void {
    this.lastValLoss = loss;
    this.metrics.valLoss.set(loss);
  }

  /** Seconds of the last `n` completed iterations. */
  recentSeconds(n: number): number[] {
    return this.history.slice(-n).map((h) => h.seconds);
  }
}
