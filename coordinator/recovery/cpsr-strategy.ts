/**
 * CPSR (docs/cpsr.md): checkpoints as the checkpoint baseline takes them, but the last few are
 * kept on disk as each stage's history, and a lost stage comes back alone: its last checkpoint
 * (weights and Adam state), its weights moved forward to the current iteration by a predictor
 * that learns from that stage's own checkpoint history (shared/recovery/cpsr). The other stages
 * keep their state: no rollback. `stage-restore` is the same without the prediction (the ablation
 * that shows what prediction adds).
 *
 * Where the predictor trains: in the background, in a worker thread (cpsr-fitter.ts), every
 * stage after each checkpoint; a failure only predicts with the stage's latest fit. Without a
 * fitter (none passed) it fits at the failure on the event loop, as before. The prediction falls
 * back to the plain restore, and says why, when the history is too short, the held-out error is
 * above the bound, the numbers are not finite, or the worker crashed or timed out. A stage whose
 * tab was quarantined, or a run with no usable checkpoint, is rebuilt from its neighbours (CheckFree).
 *
 * The interval (`--checkpoint-every cpsr`): CpsrIntervalPlanner, fed here with each iteration's
 * losses and seconds, each checkpoint's cost, each fit's error and each failure; re-planned after
 * every checkpoint and fit, and logged (with its inputs) whenever it changes.
 */
import { stageParamSpecs } from '../../shared/model/params.js';
import { encodeStageState } from '../../shared/protocol/index.js';
import type { IterationRecord } from '../../shared/protocol/operator.js';
import { CheckpointHistory, DEFAULT_HISTORY_LIMITS } from '../../shared/recovery/cpsr/history.js';
import { CpsrPredictor, DEFAULT_PREDICTOR, minCheckpoints, type PredictorConfig } from '../../shared/recovery/cpsr/predictor.js';
import { flattenWeights, flatLength, unflattenWeights } from '../../shared/recovery/cpsr/flat.js';
import { checkStageState } from '../tabs/bundle-check.js';
import type { Logger } from '../record/log.js';
import type { CheckpointStrategy } from './checkpoint-strategy.js';
import type { CheckpointStore } from './checkpoint-store.js';
import type { LostStage, Rebuilt, RecoveryStrategy, RunShape } from './recovery-strategy.js';
import type { CpsrFitter, StageFit } from './cpsr-fitter.js';
import { describePlan, type CpsrIntervalPlanner, type IntervalPlan } from './cpsr-interval-planner.js';
import type { CpsrStatus } from '../../shared/protocol/operator.js';
import { CpsrHistoryCache } from './cpsr-history-cache.js';

/** All stages' histories together stay under this (the slides: the predictor under 200 MB). */
export const CPSR_HISTORY_BYTES = 200 * 1024 * 1024;

/** Checkpoints each stage's history holds: all stages' histories within CPSR_HISTORY_BYTES. */
export function cpsrHistoryCapacity(run: RunShape): number {
  const largest = Math.max(...Array.from({ length: run.nStages }, (_, s) => flatLength(stageParamSpecs(run.config, s)) * 4));
  return Math.max(1, Math.min(DEFAULT_HISTORY_LIMITS.capacity, Math.floor(CPSR_HISTORY_BYTES / run.nStages / largest)));
}

export interface CpsrDeps {
  run: RunShape;
  /** Checkpoints each stage's history holds (cpsrHistoryCapacity); the checkpointing keeps as many on disk. */
  capacity: number;
  /** Takes the checkpoints (interval, uploads, files) exactly as the checkpoint baseline does. */
  checkpointing: CheckpointStrategy;
  checkpoints: CheckpointStore;
  /** The rebuild when nothing of the stage's own can be used (quarantined tab, no checkpoint). */
  fromNeighbours: RecoveryStrategy;
  iteration: () => number;
  predictor?: PredictorConfig;
  log: Logger;
  /** Fits in the background (cpsr only); without it the fit runs at the failure. */
  fitter?: CpsrFitter | null;
  /** The interval planner it feeds (its interval is used under `--checkpoint-every cpsr`). */
  planner?: CpsrIntervalPlanner | null;
  /** An event for operators (a re-plan, a background fit that failed). */
  note?: (message: string, data: Record<string, unknown>) => void;
}

export class CpsrStrategy implements RecoveryStrategy {
  /** Checkpoints this strategy has seen taken (the planner's count of checkpoints). */
  private taken = 0;
  private plan: IntervalPlan | null = null;
  private lastRestore: CpsrStatus['lastRestore'] = null;
  private cache = new CpsrHistoryCache();

  constructor(
    readonly name: 'cpsr' | 'stage-restore',
    private deps: CpsrDeps,
  ) {}

  /** What the dashboard shows: the planned interval, each stage's latest fit, the last restore. */
  status(): CpsrStatus {
    const f = this.deps.fitter;
    return {
      plan: this.plan && { interval: this.plan.interval, source: this.plan.source, reason: this.plan.reason, cpsr: this.plan.cpsr, youngDaly: this.plan.youngDaly },
      fits: f
        ? [...f.fits.values()].sort((a, b) => a.stage - b.stage).map((x) => ({ stage: x.stage, usable: x.outcome.usable, valRatio: x.outcome.valRatio, checkpoints: x.outcome.checkpoints, lastIteration: x.outcome.lastIteration, seconds: x.outcome.seconds }))
        : [],
      worker: f ? { peakBytes: f.peakBytes, fitSeconds: f.fitSeconds, lastFailure: f.lastFailure } : null,
      lastRestore: this.lastRestore,
    };
  }

  /** The background fitter (null: stage-restore, or fits at the failure). */
  get fitter(): CpsrFitter | null {
    return this.deps.fitter ?? null;
  }

  /** The plan in force (null before the first iteration, or without a planner). */
  get currentPlan(): IntervalPlan | null {
    return this.plan;
  }

  /**
   * The stages refitted after this checkpoint: round robin, as few as keep every stage's fit
   * within the predictor's maxFitAge checkpoints of the newest (4 stages, age 3: 2 per checkpoint).
   */
  private stagesToFit(): number[] {
    const n = this.deps.run.nStages;
    const age = Math.max(1, (this.deps.predictor ?? DEFAULT_PREDICTOR).maxFitAge);
    const per = Math.min(n, Math.ceil(n / age));
    return Array.from({ length: per }, (_, i) => (this.taken * per + i) % n);
  }

  /** The interval the planner gives now (null: no planner). */
  plannedInterval(): number | null {
    return this.plan?.interval ?? null;
  }

  /** A background fit finished: the planner learns the predictor's error. */
  onFit(f: StageFit): void {
    this.deps.planner?.observeFit(f.runCheckpoints, f.outcome.valMse);
    this.replan();
  }

  private replan(): void {
    const { planner } = this.deps;
    if (!planner) return;
    const prev = this.plan;
    this.plan = planner.plan();
    if (!prev || prev.interval !== this.plan.interval || prev.source !== this.plan.source) {
      const line = describePlan(this.plan);
      this.deps.log.info({ plan: this.plan }, `cpsr planner: ${line}`);
      this.deps.note?.(`cpsr planner: ${line}`, { plan: this.plan });
    }
  }

  async close(): Promise<void> {
    await this.deps.fitter?.close();
  }

  /** The predictor needs this many checkpoints of a stage before it may predict. */
  get needed(): number {
    return minCheckpoints(this.deps.predictor ?? DEFAULT_PREDICTOR);
  }

  async afterIteration(r: IterationRecord): Promise<void> {
    const { planner, fitter, checkpoints } = this.deps;
    planner?.observeIteration(r.iteration, r.trainLoss, r.valLoss, r.seconds);
    const before = checkpoints.latest()?.iteration;
    await this.deps.checkpointing.afterIteration(r);
    const ck = checkpoints.latest();
    if (ck && ck.iteration !== before) {
      this.taken++;
      planner?.observeCheckpoint(ck.seconds);
      // Not awaited: the worker fits while the run trains on.
      if (this.name === 'cpsr' && fitter) void fitter.fitInBackground(this.stagesToFit(), this.taken);
      this.replan();
    } else if (!this.plan) this.replan();
  }

  resumeWithoutTabs(): number | null {
    return this.deps.checkpointing.resumeWithoutTabs();
  }

  /** The stage's history for a background fit (an unreadable checkpoint is left out and logged). */
  historyOf(stage: number): CheckpointHistory {
    const { history, skipped } = this.history(stage);
    for (const s of skipped) this.deps.log.warn({ stage, skipped: s }, 'cpsr history: checkpoint left out');
    return history;
  }

  /**
   * The stage's history read back from the kept checkpoints (oldest first), each file checked
   * against its recorded size and hash and decoded against the stage's specs; an unreadable one
   * is left out and named.
   */
  private history(stage: number): { history: CheckpointHistory; skipped: string[] } {
    const { config } = this.deps.run;
    const specs = stageParamSpecs(config, stage);
    const history = new CheckpointHistory({ capacity: this.deps.capacity, maxBytes: CPSR_HISTORY_BYTES });
    const skipped: string[] = [];
    let recorded;
    try {
      recorded = this.deps.checkpoints.recorded().slice(0, this.deps.capacity).reverse();
    } catch (e) {
      return { history, skipped: [`the checkpoint records could not be read (${(e as Error).message})`] };
    }
    this.cache.retain(recorded);
    for (const ck of recorded) {
      try {
        const flat = this.cache.get(stage, ck, () => flattenWeights(checkStageState(config, stage, this.deps.checkpoints.readStage(ck, stage)).weights, specs));
        history.add(ck.iteration, flat);
      } catch (e) {
        skipped.push(`checkpoint ${ck.iteration}: ${(e as Error).message}`);
      }
    }
    return { history, skipped };
  }

  async rebuild(lost: LostStage): Promise<Rebuilt> {
    const { run, checkpoints, log } = this.deps;
    const { stage } = lost;
    const notes: string[] = [];
    if (lost.distrust) {
      const r = await this.deps.fromNeighbours.rebuild(lost);
      return { ...r, notes: [`its tab was quarantined: its own checkpoints are not trusted, so the stage is rebuilt from its neighbours`, ...r.notes] };
    }
    const last = checkpoints.latest();
    let restored: ReturnType<typeof checkStageState> | null = null;
    try {
      if (last) restored = checkStageState(run.config, stage, checkpoints.readStage(last, stage));
    } catch (e) {
      notes.push(`the checkpoint at iteration ${last!.iteration} is unusable (${(e as Error).message})`);
    }
    if (!last || !restored) {
      const r = await this.deps.fromNeighbours.rebuild(lost);
      return { ...r, fallback: true, notes: [...notes, 'no usable checkpoint of the stage yet: rebuilt from its neighbours', ...r.notes] };
    }
    const now = this.deps.iteration();
    let weights = restored.weights;
    let method: Rebuilt['method'] = 'stage-restore';
    let predicted = false;
    this.deps.planner?.observeFailure();
    let valRatio: number | null = null;
    if (this.name === 'cpsr' && this.deps.fitter) {
      const t0 = Date.now();
      const { history, skipped } = this.history(stage);
      for (const s of skipped) notes.push(`history: ${s}`);
      const p = await this.deps.fitter.predict(stage, history, now);
      if (p.predicted) {
        weights = unflattenWeights(p.state, stageParamSpecs(run.config, stage));
        method = 'cpsr';
        predicted = true;
        valRatio = p.valRatio;
        notes.push(`predicted ${p.horizon} iteration(s) forward from the checkpoint at ${p.from} with the background fit (held-out error ${p.valRatio.toFixed(3)} of the plain restore's; ${history.size} checkpoints; ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
      } else {
        notes.push(`no prediction (${p.reason}): the plain restore`);
      }
    } else if (this.name === 'cpsr') {
      const t0 = Date.now();
      const { history, skipped } = this.history(stage);
      for (const s of skipped) notes.push(`history: ${s}`);
      const predictor = new CpsrPredictor(this.deps.predictor ?? DEFAULT_PREDICTOR);
      try {
        const fit = history.size >= this.needed ? predictor.fit(history) : null;
        const p = history.size > 0 ? predictor.predict(history, now) : null;
        if (p?.predicted) {
          weights = unflattenWeights(p.state, stageParamSpecs(run.config, stage));
          method = 'cpsr';
          predicted = true;
          valRatio = p.valRatio;
          notes.push(`predicted ${p.horizon} iteration(s) forward from the checkpoint at ${p.from} (held-out error ${p.valRatio.toFixed(3)} of the plain restore's; ${history.size} checkpoints; ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
        } else {
          const why = !fit ? `${history.size} checkpoint(s) of the stage, the predictor needs ${this.needed}` : p && !p.predicted ? p.reason : 'no history';
          notes.push(`no prediction (${why}): the plain restore`);
        }
      } catch (e) {
        notes.push(`the predictor failed (${(e as Error).message}): the plain restore`);
        log.warn({ stage, err: (e as Error).message }, 'cpsr prediction failed');
      } finally {
        predictor.dispose();
      }
    }
    const state = encodeStageState({ weights, optimizer: restored.optimizer });
    const horizon = now - last.iteration;
    this.lastRestore = { stage, iteration: now, checkpoint: last.iteration, horizon, predicted, valRatio, at: Date.now() };
    return {
      method,
      fallback: this.name === 'cpsr' && !predicted,
      description: `${method}: stage ${stage} restored from its checkpoint at iteration ${last.iteration}${predicted ? `, predicted forward to ${now}` : ` (${horizon} iteration(s) behind)`}; the other stages keep their state`,
      sources: [{ stage, part: `checkpoint@${last.iteration}`, bytes: state.byteLength }],
      bytesMoved: state.byteLength,
      notes: [`restored checkpoint: iteration ${last.iteration}; horizon ${horizon}`, ...notes],
      handTo: { weights: state, reason: `${method} from the checkpoint at iteration ${last.iteration}`, lrScale: 1 },
    };
  }
}
