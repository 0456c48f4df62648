/**
 * CPSR on in-process stages (the benchmark, the churn study): every `interval` completed
 * iterations each stage's state is checkpointed (a deep snapshot, as the coordinator's
 * checkpoint-store.ts would hold on disk) and its flat weights join that stage's bounded history;
 * when a stage is lost, only that stage comes back:
 *   - 'stage-restore': its last checkpoint (weights and Adam state), nothing predicted (the ablation);
 *   - 'cpsr': its last checkpoint, weights moved forward to the current iteration by the stage's
 *     predictor (shared/recovery/cpsr), Adam state from the checkpoint; falls back to the plain
 *     restore with the reason when the predictor may not predict.
 * The other stages keep their state (no rollback).
 *
 * The predictors are fitted right after every `refitEvery`-th checkpoint (for the stages in
 * `fitStages`), as a live run would in the background; `fits` records each fit's outcome and
 * seconds (the predictor's overhead). A fit serves up to the predictor's maxFitAge checkpoints.
 */
import type { Stage } from '../shared/model/stage.js';
import { stageParamSpecs } from '../shared/model/params.js';
import type { ResolvedConfig } from '../shared/model/config.js';
import { CheckpointHistory, DEFAULT_HISTORY_LIMITS, type HistoryLimits } from '../shared/recovery/cpsr/history.js';
import { CpsrPredictor, DEFAULT_PREDICTOR, type FitOutcome, type PredictorConfig } from '../shared/recovery/cpsr/predictor.js';
import { flattenWeights, unflattenWeights } from '../shared/recovery/cpsr/flat.js';
import { RecoveryError } from '../shared/recovery/errors.js';
import { restoreStage, snapshotStage, type StageSnapshot } from './stage-snapshot.js';

export type StageRestoreMode = 'stage-restore' | 'cpsr';

export interface LocalCpsrEvent {
  stage: number;
  mode: StageRestoreMode;
  /** Iteration of the checkpoint restored. */
  from: number;
  /** Iteration the stage was lost at (the prediction's target). */
  to: number;
  predicted: boolean;
  /** Why nothing was predicted (null when it was). */
  reason: string | null;
  /** The fit used (null for stage-restore). */
  fit: FitOutcome | null;
  description: string;
}

export interface LocalCpsrOptions {
  interval: number;
  history?: HistoryLimits;
  predictor?: PredictorConfig;
  /** Fit after every this-many checkpoints (default 1). */
  refitEvery?: number;
  /** Stages whose predictor is fitted (default all). */
  fitStages?: number[];
}

export class LocalCpsr {
  readonly histories: CheckpointHistory[];
  /** The last checkpoint of every stage. */
  private snapshots: (StageSnapshot | null)[];
  private lastIteration: number | null = null;
  private count = 0;
  /** One predictor per stage (shared, read-only, by clones). */
  private predictors: (CpsrPredictor | null)[];
  /** Every predictor made by this object and its clones (freed by dispose()). */
  private made: CpsrPredictor[] = [];
  /** Every fit so far: stage, outcome (with its seconds). */
  readonly fits: { stage: number; iteration: number; outcome: FitOutcome }[] = [];

  constructor(
    readonly config: ResolvedConfig,
    readonly nStages: number,
    readonly opts: LocalCpsrOptions,
  ) {
    if (!Number.isInteger(opts.interval) || opts.interval < 1) throw new RecoveryError(`checkpoint interval must be an integer >= 1, got ${opts.interval}`);
    this.histories = Array.from({ length: nStages }, () => new CheckpointHistory(opts.history ?? DEFAULT_HISTORY_LIMITS));
    this.snapshots = Array.from({ length: nStages }, () => null);
    this.predictors = Array.from({ length: nStages }, () => null);
  }

  /** Checkpoints every stage when `iteration` (completed iterations) is a multiple of the interval; returns whether it did. */
  maybeCheckpoint(stages: Stage[], iteration: number): boolean {
    if (iteration % this.opts.interval !== 0 || iteration === this.lastIteration) return false;
    stages.forEach((s, i) => {
      this.snapshots[i] = snapshotStage(s);
      this.histories[i]!.add(iteration, flattenWeights(this.snapshots[i]!.weights, stageParamSpecs(this.config, i)));
    });
    this.lastIteration = iteration;
    if (++this.count % (this.opts.refitEvery ?? 1) === 0) {
      for (const s of this.opts.fitStages ?? stages.map((_, i) => i)) this.fit(s);
    }
    return true;
  }

  /** Fits stage `stage`'s predictor on its history now (maybeCheckpoint does this on its schedule). */
  fit(stage: number): FitOutcome {
    if (this.lastIteration === null) throw new RecoveryError('no checkpoint to fit on');
    const p = new CpsrPredictor(this.opts.predictor ?? DEFAULT_PREDICTOR);
    this.made.push(p);
    const outcome = p.fit(this.histories[stage]!);
    this.fits.push({ stage, iteration: this.lastIteration, outcome });
    // an unusable fit leaves the previous predictor in place (predict() applies its age bound)
    if (outcome.usable) this.predictors[stage] = p;
    return outcome;
  }

  /** Frees every predictor this object and its clones made (call once, on the original, when all are done). */
  dispose(): void {
    this.made.forEach((p) => p.dispose());
    this.made.length = 0;
  }

  /** Iteration of the last checkpoint (null before the first). */
  get last(): number | null {
    return this.lastIteration;
  }

  /** A copy sharing nothing mutable (a fork of the run starts from it). */
  clone(): LocalCpsr {
    const c = new LocalCpsr(this.config, this.nStages, this.opts);
    this.histories.forEach((h, i) => h.states.forEach((s, k) => c.histories[i]!.add(h.iterations[k]!, s)));
    c.snapshots = [...this.snapshots]; // snapshots are never mutated (restoreStage copies)
    c.lastIteration = this.lastIteration;
    c.count = this.count;
    (c as { fits: LocalCpsr['fits'] }).fits = [...this.fits];
    c.predictors = [...this.predictors];
    c.made = this.made;
    return c;
  }

  /** The checkpoint baseline: every stage back to its last checkpoint; returns that checkpoint's iteration. */
  rollbackAll(stages: Stage[]): number {
    if (this.lastIteration === null) throw new RecoveryError('no checkpoint to roll back to');
    stages.forEach((s, i) => {
      s.dispose();
      stages[i] = restoreStage(this.config, this.snapshots[i]!);
    });
    return this.lastIteration;
  }

  /** Stage `lost` fails at the start of iteration `iteration`; replaces stages[lost] in place. */
  recover(stages: Stage[], lost: number, iteration: number, mode: StageRestoreMode): LocalCpsrEvent {
    const snap = this.snapshots[lost];
    if (!snap || this.lastIteration === null) throw new RecoveryError(`no checkpoint of stage ${lost} to restore from`);
    const from = this.lastIteration;
    stages[lost]!.dispose();
    const fresh = restoreStage(this.config, snap);
    let fit: FitOutcome | null = null;
    let reason: string | null = 'ablation: no prediction';
    if (mode === 'cpsr') {
      const predictor = this.predictors[lost];
      fit = [...this.fits].reverse().find((f) => f.stage === lost)?.outcome ?? null;
      if (!predictor) reason = fit && !fit.usable ? fit.reason : 'the predictor has not been fitted yet';
      else {
        fit = predictor.last;
        const p = predictor.predict(this.histories[lost]!, iteration);
        if (p.predicted) {
          fresh.setWeights(unflattenWeights(p.state, stageParamSpecs(this.config, lost)));
          reason = null;
        } else reason = p.reason;
      }
    }
    stages[lost] = fresh;
    const what = reason === null ? `predicted forward ${iteration - from} iteration(s) (validation error ${fit?.valRatio?.toFixed(3)} of the plain restore's)` : `plain restore (${reason})`;
    return { stage: lost, mode, from, to: iteration, predicted: reason === null, reason, fit, description: `${mode}: stage ${lost} from its checkpoint at iteration ${from}, ${what}` };
  }
}
