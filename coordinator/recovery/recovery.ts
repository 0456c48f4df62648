/**
 * The recovery ladder (replica, handoff, strategy rungs: docs/recovery.md#the-recovery-ladder).
 * This module owns the ladder's events and metrics; the configured strategy (one object each
 * behind recovery-strategy.ts) owns how a stage comes back and what it keeps fresh between failures.
 */
import type { RecoveryStrategy as StrategyName } from '../../shared/run-settings.js';
import type { RecoveryMethod } from '../../shared/recovery/plan.js';
import type { Volunteer } from '../tabs/registry.js';
import type { StageTable } from '../placement/stage-table.js';
import type { IterationRecord } from '../../shared/protocol/operator.js';
import type { RecoveryLadder } from '../training/scheduler.js';
import type { RunProgress } from '../training/run-progress.js';
import type { SwarmMetrics } from '../record/metrics.js';
import type { EventLog } from '../record/events-log.js';
import type { Logger } from '../record/log.js';
import type { CheckpointStore } from './checkpoint-store.js';
import type { CheckpointRecord } from '../record/store.js';
import type { StagePuller } from '../tabs/stage-puller.js';
import type { RebuildSource, Rebuilt, RecoveryStrategy, RunShape, StrategySettings } from './recovery-strategy.js';
import { CheckFreeStrategy } from './checkfree-strategy.js';
import { RedundantStrategy } from './redundant-strategy.js';
import { CheckpointStrategy } from './checkpoint-strategy.js';
import { ReinitStrategy } from './reinit-strategy.js';
import { CpsrStrategy, cpsrHistoryCapacity } from './cpsr-strategy.js';
import { CpsrFitter, DEFAULT_FITTER } from './cpsr-fitter.js';
import { CpsrIntervalPlanner, DEFAULT_INTERVAL_PLANNER } from './cpsr-interval-planner.js';
import { DEFAULT_PREDICTOR } from '../../shared/recovery/cpsr/predictor.js';
import { flatLength } from '../../shared/recovery/cpsr/flat.js';
import { stageParamSpecs } from '../../shared/model/params.js';
import type { CpsrStatus } from '../../shared/protocol/operator.js';

export interface RecoveryOptions extends StrategySettings {
  strategy: StrategyName;
}

/** The recovery ladder: which rung handled a lost tab. */
export type RecoveryRung = 'replica' | 'handoff' | 'strategy';

export interface SwarmRecoveryEvent {
  stage: number;
  rung: RecoveryRung;
  strategy: StrategyName;
  method: RecoveryMethod | 'replica' | 'handoff';
  fallback: boolean;
  sources: RebuildSource[];
  bytesMoved: number;
  detectedAt: number;
  /** Iteration the run was at when the stage was lost. */
  iteration: number;
  lossBefore: number | null;
  lossAfter: number | null;
  /** Seconds from loss detected to the next completed iteration. */
  seconds: number | null;
  notes: string[];
}

export interface RecoveryDeps {
  /** The run this ladder recovers: its shape, and where it is (a rollback moves it). */
  run: RunShape;
  progress: RunProgress;
  stages: StageTable;
  puller: StagePuller;
  /** Loads a state (null: the seed) into a tab that serves `stage` now. */
  reload: (v: Volunteer, stage: number, state: Uint8Array | null, reason: string) => Promise<void>;
  /** Tabs waiting for a stage (a rebuilt stage waits for one when there are none). */
  waiting: () => number;
  metrics: SwarmMetrics;
  events: EventLog;
  log: Logger;
  checkpoints: CheckpointStore;
}

export class Recovery implements RecoveryLadder {
  /** Recoveries waiting for the next completed iteration to report their duration. */
  private open: SwarmRecoveryEvent[] = [];
  readonly done: SwarmRecoveryEvent[] = [];
  /** The last rung: rebuilds a stage whose last tab is gone. */
  strategy: RecoveryStrategy;
  /**
   * Stages whose weights are no trained model's now: being rebuilt, or re-initialised from the
   * seed since the last completed iteration. A neighbour's rebuild does not use them.
   */
  private unfit = new Set<number>();

  constructor(
    public opts: RecoveryOptions,
    private deps: RecoveryDeps,
  ) {
    this.strategy = this.create(opts.strategy);
  }

  /** The run's last checkpoint (recorded in SQLite, so it survives a restart). */
  get lastCheckpoint(): CheckpointRecord | null {
    return this.deps.checkpoints.latest();
  }

  /** The run's checkpoints kept on disk, newest first (one, or CPSR's short history). */
  get checkpointsKept(): CheckpointRecord[] {
    return this.deps.checkpoints.recorded();
  }

  /** The operator picked another strategy: it applies from the next failure on. */
  setStrategy(name: StrategyName): void {
    this.opts.strategy = name;
    void this.strategy.close?.();
    this.strategy = this.create(name);
  }

  /** CPSR's planner, fits and last restore for the dashboard (null under other strategies). */
  get cpsrStatus(): CpsrStatus | null {
    return this.strategy instanceof CpsrStrategy ? this.strategy.status() : null;
  }

  /** Stops the strategy's background work (CPSR's fitting worker). */
  async close(): Promise<void> {
    await this.strategy.close?.();
  }

  private create(name: StrategyName): RecoveryStrategy {
    const { run, progress, stages, puller, metrics, events, log, checkpoints } = this.deps;
    const replicas = (stage: number) => stages.replicas(stage);
    const checkfree = (variant: 'checkfree' | 'checkfree+') =>
      new CheckFreeStrategy(variant, {
        run,
        settings: this.opts,
        puller,
        replicas,
        lastNorms: () => progress.lastNorms,
        unfit: () => this.unfit,
        countReplicaBytes: (b) => metrics.recoveryBytes.inc({ kind: 'replica' }, b),
        log,
      });
    const checkpointing = (keep: number, plannedInterval?: () => number | null) =>
      new CheckpointStrategy({
        run,
        settings: this.opts,
        puller,
        checkpoints,
        replicas,
        setPending: (s, p) => stages.setPending(s, p),
        reload: this.deps.reload,
        progress,
        countCheckpointBytes: (b) => metrics.recoveryBytes.inc({ kind: 'checkpoint' }, b),
        note: (message, data) => events.add('run', message, data),
        log,
        keep,
        plannedInterval,
      });
    // CPSR and the plain stage restore: the baseline's checkpoints, a short history of them kept.
    const stageRestore = (name: 'cpsr' | 'stage-restore') => {
      const capacity = cpsrHistoryCapacity(run);
      const np = Math.max(...Array.from({ length: run.nStages }, (_, s) => flatLength(stageParamSpecs(run.config, s))));
      const planner = new CpsrIntervalPlanner({ ...DEFAULT_INTERVAL_PLANNER, np, xi: this.opts.cpsrXi ?? DEFAULT_INTERVAL_PLANNER.xi, priorFailuresPerHour: Math.max(this.opts.expectedFailureRate, 1e-6) * run.nStages });
      let strategy: CpsrStrategy | null = null;
      const predictor = { ...DEFAULT_PREDICTOR, maxErrorRatio: this.opts.cpsrMaxErrorRatio ?? DEFAULT_PREDICTOR.maxErrorRatio };
      const fitter =
        name === 'cpsr'
          ? new CpsrFitter(
              { ...DEFAULT_FITTER, predictor, duty: this.opts.cpsrFitDuty ?? DEFAULT_FITTER.duty },
              (stage) => strategy!.historyOf(stage),
              (f) => strategy?.onFit(f),
              (reason) => {
                log.warn({ reason }, 'cpsr background fit failed');
                events.add('recovery', `cpsr: ${reason}; a failure meanwhile restores the stage plainly`, { reason });
              },
            )
          : null;
      strategy = new CpsrStrategy(name, {
        run,
        capacity,
        checkpointing: checkpointing(capacity, () => strategy?.plannedInterval() ?? null),
        checkpoints,
        fromNeighbours: checkfree('checkfree'),
        iteration: () => progress.iteration,
        predictor,
        log,
        fitter,
        planner,
        note: (message, data) => events.add('run', message, data),
      });
      return strategy;
    };
    const strategies: Record<StrategyName, () => RecoveryStrategy> = {
      'checkfree+': () => checkfree('checkfree+'),
      checkfree: () => checkfree('checkfree'),
      redundant: () =>
        new RedundantStrategy({
          run,
          puller,
          replicas,
          fromNeighbours: checkfree('checkfree'),
          lrScale: this.opts.lrScale,
          countCopyBytes: (b) => metrics.recoveryBytes.inc({ kind: 'redundant' }, b),
          log,
        }),
      checkpoint: () => checkpointing(1),
      cpsr: () => stageRestore('cpsr'),
      'stage-restore': () => stageRestore('stage-restore'),
      none: () => new ReinitStrategy(run),
    };
    return strategies[name]();
  }

  /** Called by the scheduler when `stage`'s last tab is gone: the strategy rung. */
  async stageLost(stage: number, opts: { distrust?: boolean } = {}): Promise<void> {
    const { progress, stages } = this.deps;
    const detectedAt = Date.now();
    const iteration = progress.iteration;
    const lossBefore = progress.lastTrainLoss;
    const strategy = this.strategy;
    stages.markRebuilding(stage);
    this.unfit.add(stage);
    const r = await strategy.rebuild({ stage, distrust: opts.distrust ?? false });
    if (r.handTo) stages.setPending(stage, r.handTo);
    if (r.handTo && r.handTo.weights !== null) this.unfit.delete(stage);
    this.openStrategyEvent(stage, strategy.name, r, { iteration, detectedAt, lossBefore });
  }

  private openStrategyEvent(stage: number, strategy: StrategyName, r: Rebuilt, at: { iteration: number; detectedAt: number; lossBefore: number | null }): void {
    const ev: SwarmRecoveryEvent = {
      stage,
      rung: 'strategy',
      strategy,
      method: r.method,
      fallback: r.fallback,
      sources: r.sources,
      bytesMoved: r.bytesMoved,
      detectedAt: at.detectedAt,
      iteration: at.iteration,
      lossBefore: at.lossBefore,
      lossAfter: null,
      seconds: null,
      notes: r.notes,
    };
    // SkipPipe: a stage rebuilt while vacant is rebuilt again when a tab comes (vacancy-skip.ts
    // rejoin); that is one recovery, timed from the first loss, and it closes once a tab serves it.
    const earlier = this.open.findIndex((e) => e.stage === stage && e.rung === 'strategy');
    if (earlier >= 0) Object.assign(ev, pickLoss(this.open.splice(earlier, 1)[0]!));
    this.open.push(ev);
    this.deps.metrics.recoveries.inc({ rung: 'strategy', method: r.method });
    this.deps.metrics.recoveryBytes.inc({ kind: 'recovery' }, r.bytesMoved);
    this.deps.events.add(
      'recovery',
      `stage ${stage} lost at iteration ${ev.iteration}: ${r.description}; ${r.fallback ? 'FALLBACK to seed re-init; ' : ''}` +
        `${(r.bytesMoved / 1024).toFixed(1)} KiB moved${r.notes.length ? `; ${r.notes.join('; ')}` : ''}` +
        `${this.deps.waiting() ? '' : '; waiting for a volunteer to join'}`,
      { ...ev },
    );
  }

  /**
   * A replica was lost while its stage kept others: nothing rebuilt; `rerun` hops ran again on
   * siblings, or null when it was lost at the barrier (which re-runs them if they are needed).
   */
  replicaLost(stage: number, v: Volunteer, rerun: number | null): void {
    const again = rerun === null ? 'lost at the barrier: its hops run again on a sibling if its gradient was not combined yet' : `${rerun} microbatch hop(s) run again on a sibling`;
    this.noteRung(stage, 'replica', 0, [`${v.id} lost; ${this.deps.stages.size(stage)} replica(s) continue; ${again}`]);
  }

  /** A stage's last replica left on purpose and handed its exact state over. */
  noteHandoff(stage: number, v: Volunteer, bytes: number): void {
    this.noteRung(stage, 'handoff', bytes, [`${v.id} left and handed over its exact weights and Adam state; the next tab continues from them`]);
  }

  private noteRung(stage: number, rung: 'replica' | 'handoff', bytesMoved: number, notes: string[]): void {
    const { progress, metrics, events } = this.deps;
    const ev: SwarmRecoveryEvent = {
      stage,
      rung,
      strategy: this.strategy.name,
      method: rung,
      fallback: false,
      sources: [],
      bytesMoved,
      detectedAt: Date.now(),
      iteration: progress.iteration,
      lossBefore: progress.lastTrainLoss,
      lossAfter: null,
      seconds: null,
      notes,
    };
    this.open.push(ev);
    metrics.recoveries.inc({ rung, method: rung });
    events.add('recovery', `stage ${stage} (${rung}): ${notes.join('; ')}`, { ...ev });
  }

  /** After every completed iteration: close open recovery events, then the strategy's upkeep. */
  async afterIteration(r: IterationRecord): Promise<void> {
    // Stages a new tab took (handoff, rebuild): whatever the strategy kept on the old tab is gone.
    const restored = [...new Set(this.open.filter((ev) => ev.rung !== 'replica').map((ev) => ev.stage))];
    // A stage trained around for want of a tab (SkipPipe) stays open until a tab takes it.
    const vacant = this.open.filter((ev) => this.deps.stages.size(ev.stage) === 0);
    for (const ev of this.open.filter((e) => !vacant.includes(e))) {
      ev.seconds = (r.time - ev.detectedAt) / 1000;
      ev.lossAfter = r.trainLoss;
      this.deps.metrics.recoverySeconds.observe(ev.seconds);
      this.done.push(ev);
      this.deps.events.add(
        'recovery',
        `stage ${ev.stage} recovered by ${ev.method}: ${ev.seconds.toFixed(2)} s to the next iteration, loss ${ev.lossBefore?.toFixed(4) ?? '-'} -> ${ev.lossAfter.toFixed(4)}`,
        { ...ev, completed: true },
      );
    }
    this.open = vacant;
    this.unfit.clear(); // every stage trained an iteration
    await this.strategy.afterIteration(r, restored);
  }

  /**
   * A restarted coordinator whose tabs all stayed away: the iteration every stage restarts from
   * (when the strategy keeps something to restart from), else null (the seed).
   */
  resumeWithoutTabs(): number | null {
    return this.strategy.resumeWithoutTabs();
  }
}

/** The loss-time fields of a recovery event (what a later rebuild of the same loss keeps). */
function pickLoss(e: SwarmRecoveryEvent): Pick<SwarmRecoveryEvent, 'detectedAt' | 'iteration' | 'lossBefore'> {
  return { detectedAt: e.detectedAt, iteration: e.iteration, lossBefore: e.lossBefore };
}
