/**
 * The run loop: between iterations waiting tabs join groups (placement); then, while every stage is
 * served and nobody paused the run, one iteration after another: a training pass
 * (pipeline-pass.ts, the train kind of pass-kind.ts), the barrier (barrier.ts), the record
 * (run-progress.ts, the `onIteration` hook: recovery's upkeep, replica sync, the operator), and
 * every `--eval-every` iterations a validation pass.
 *
 * Losses reach the loop through `tabLost`, which hands them to the recovery ladder
 * (docs/recovery.md#the-recovery-ladder); a stage's last replica lost abandons the iteration on
 * every tab (nothing applied). A watchdog (task-watchdog.ts) drops a tab that leaves a task
 * unanswered too long.
 */
import type { ResolvedConfig } from '../../shared/model/config.js';
import type { OutMeta, RunStatus } from '../../shared/protocol/events.js';
import type { IterationRecord } from '../../shared/protocol/operator.js';
import type { TokenDataset, Batch } from '../../shared/data/dataset.js';
import { wireOf, type RunSettings } from '../../shared/run-settings.js';
import { maxRelayFrameBytes } from '../screening/relay-check.js';
import { Screening } from '../screening/screening.js';
import { Probation } from '../screening/probation.js';
import { SuspectReview } from '../screening/suspect-review.js';
import { AuditSiblings } from '../screening/audit-siblings.js';
import { OwnGradientAudit } from '../screening/own-gradient-audit.js';
import type { Volunteer } from '../tabs/registry.js';
import type { BundleTransfer } from '../tabs/bundle-transfer.js';
import type { TabSpeeds } from '../tabs/tab-speed.js';
import type { StageTable } from '../placement/stage-table.js';
import type { Placement } from '../placement/placement.js';
import type { SwarmMetrics } from '../record/metrics.js';
import type { EventLog } from '../record/events-log.js';
import type { Logger } from '../record/log.js';
import { HopTimes, inFlightWindow, type InFlightWindow } from './in-flight-window.js';
import { evalPass, trainPass, type PassKind } from './pass-kind.js';
import { PipelinePass } from './pipeline-pass.js';
import { Barrier, BarrierPhase } from './barrier.js';
import { ReplicaAsk } from './replica-ask.js';
import { TaskBook } from './task-book.js';
import { TaskWatchdog } from './task-watchdog.js';
import { AnswerTimes, TASK_DEADLINE } from './answer-times.js';
import { VacancyWatch } from './vacancy-watch.js';
import type { RecoveryLadder, StatusBroadcast, TabActions } from './collaborators.js';
import { IterationAbandoned } from './iteration-abandoned.js';
import type { RunProgress } from './run-progress.js';
import type { DilocoSync } from './diloco-sync.js';
import { dpOf } from '../../shared/run-settings.js';
import { SkipPlanner, type IterationPaths, type SkipPlanRecord } from './skip-planner.js';
import { VacancySkip } from './vacancy-skip.js';
import { partialEvalPass } from './partial-eval-pass.js';
import { evalOrder } from '../../shared/schedule/skip-paths.js';
import { measuredStageCosts } from './skip-costs.js';
import type { SchedulerKind } from '../../shared/schedule/skip-request.js';
import type { LateFallback } from '../../shared/protocol/late-fallback.js';

export { IterationAbandoned };
export type { RecoveryLadder, StatusBroadcast, TabActions };

export interface SchedulerOptions {
  settings: RunSettings;
  config: ResolvedConfig;
  swap: boolean;
  dataset: TokenDataset;
  evalEvery: number;
  evalBatches: number;
  /** Stop after this many completed iterations (0 = run forever). */
  maxIterations: number;
  /** Give up on a barrier acknowledgement after this long at most (the tab is then treated as lost); the deadline adapts below it (answer-times.ts). */
  stepTimeoutMs: number;
  /** A tab that leaves a task unanswered this long at most is treated as lost (alive but not computing); the deadline adapts below it. */
  taskTimeoutMs: number;
  /** A gradient norm this many times the stage's recent median is quarantined. */
  outlierFactor: number;
  /** A stage that waits for a volunteer this long raises an alert (vacancy-watch.ts). */
  vacancyAlertMs: number;
  /** `--max-in-flight`: microbatches in flight per replica of the narrowest stage, at most (in-flight-window.ts). */
  maxInFlight: number;
  /** SkipPipe (`--skip-ratio`, `--skip-schedule`; skip-planner.ts); absent or ratio 0: full paths. */
  skip?: { ratio: number; scheduler: SchedulerKind; record?: SkipPlanRecord };
}

export interface SchedulerDeps {
  progress: RunProgress;
  stages: StageTable;
  speeds: TabSpeeds;
  placement: Placement;
  /** How a replica's accumulated gradient is pulled (in chunks). */
  transfer: BundleTransfer;
  metrics: SwarmMetrics;
  events: EventLog;
  log: Logger;
  ladder: RecoveryLadder;
  tabs: TabActions;
  broadcast: StatusBroadcast;
  /** After every completed iteration (awaited before the next starts). */
  onIteration: (r: IterationRecord) => Promise<void>;
  /** `--dp diloco`: the sync of every stage's replicas after the step of every H-th iteration. */
  diloco?: DilocoSync;
}

export class Scheduler {
  private runState: RunStatus['state'] = 'waiting';
  private isPaused = false;
  private attempt = 0;
  /** The pass whose results are expected now (a training pass, a validation pass, or the re-runs of the barrier). */
  private pass: PipelinePass | null = null;
  private barrier: Barrier | null = null;
  private readonly train: PassKind;
  private readonly ask: ReplicaAsk;
  /** Screens each stage's gradient norm and the frames each tab relayed (screening.ts). */
  readonly screening: Screening;
  /** Tabs on probation after an unverifiable suspicion (probation.ts). */
  readonly probation: Probation;
  /** Audits relay-rule suspicions before anyone is convicted (suspect-review.ts). */
  readonly review: SuspectReview;
  /** Siblings placed on single-replica stages whose tab is on probation (audit-siblings.ts). */
  readonly auditSiblings: AuditSiblings;
  /** Audits a stage's own gradient outlier by a retry without the suspect (own-gradient-audit.ts). */
  readonly ownAudit: OwnGradientAudit;
  /** Per tab: compute and hop round trip, from tasks that found it idle (sizes the window). */
  readonly hopTimes = new HopTimes();
  /** The window of the last training pass (null before the first). */
  lastWindow: InFlightWindow | null = null;
  private observers = new Set<(r: IterationRecord) => void | Promise<void>>();
  private wake: (() => void) | null = null;
  private closed = false;
  private loopDone: Promise<void> | null = null;
  private readonly watchdog: TaskWatchdog;
  /** Recent answer times of barrier questions and tasks: how long silence is waited for. */
  readonly answerTimes = new AnswerTimes();
  /** How long each stage has waited for a volunteer; the alert past `--vacancy-alert`. */
  readonly vacancies: VacancyWatch;
  /** SkipPipe's per-iteration paths (null: every microbatch runs the full path). */
  readonly skips: SkipPlanner | null;
  /** SkipPipe: intermediate stages with no tab that the run trains around, and their rebuild when a volunteer comes. */
  readonly vacancySkip: VacancySkip;
  /** The last applied iteration's visits per stage (null: full paths). */
  private lastVisits: number[] | null = null;
  /** The running training pass's skip paths and its iteration (null: full paths). */
  private plan: { iteration: number; paths: IterationPaths } | null = null;

  constructor(readonly opts: SchedulerOptions, private deps: SchedulerDeps) {
    this.probation = new Probation(() => deps.progress.iteration, deps.metrics.probation);
    this.screening = new Screening(this.nStages, opts.outlierFactor, (v) => this.probation.strictnessOf(v));
    const { settings, config } = opts;
    this.auditSiblings = new AuditSiblings({ stages: deps.stages, probation: this.probation, events: deps.events, place: (s) => deps.placement.placeAuditSibling(s) });
    this.review = new SuspectReview({
      stages: deps.stages,
      evidence: this.screening.evidence,
      probation: this.probation,
      sender: deps.tabs.sender,
      frames: { shape: [settings.batch, config.seqLen, config.dModel], wire: wireOf(settings), maxBytes: this.maxFrameBytes() },
      // An audit task is a hop task: the adaptive task deadline (answer-times.ts), as the watchdog's.
      timeoutMs: () => this.answerTimes.deadline('task:train', TASK_DEADLINE, opts.taskTimeoutMs),
      events: deps.events,
      metrics: deps.metrics,
      replicasDiffer: dpOf(settings).mode === 'diloco',
      needSibling: (s, v) => this.auditSiblings.request(s, v),
    });
    this.ownAudit = new OwnGradientAudit({
      stages: deps.stages,
      probation: this.probation,
      events: deps.events,
      metrics: deps.metrics,
      replicasDiffer: dpOf(settings).mode === 'diloco',
      needSibling: (s, v) => this.auditSiblings.request(s, v),
    });
    this.skips = opts.skip && opts.skip.ratio > 0 ? new SkipPlanner({ nStages: settings.stages, microbatches: settings.microbatches, seed: settings.seed, swap: opts.swap, skipRatio: opts.skip.ratio, scheduler: opts.skip.scheduler }, opts.skip.record) : null;
    this.vacancySkip = new VacancySkip({
      stages: deps.stages,
      waiting: () => deps.placement.waitingCount(),
      ladder: deps.ladder,
      events: deps.events,
      canSkip: (s) => this.skips?.canSkipVacant(s) ?? false,
    });
    this.train = trainPass({ swap: opts.swap, window: (M) => this.trainWindow(M).size, order: (it, mb) => this.trainOrder(it, mb) });
    this.ask = new ReplicaAsk({
      stages: deps.stages,
      metrics: deps.metrics,
      reject: deps.tabs.reject,
      unresponsive: deps.tabs.unresponsive,
      timeoutMs: opts.stepTimeoutMs,
      times: this.answerTimes,
      movingBytes: (v) => deps.transfer.movingBytes(v),
    });
    this.watchdog = new TaskWatchdog(opts.taskTimeoutMs, {
      times: this.answerTimes,
      overdue: (deadlineOf, now) => this.activePass()?.overdue(deadlineOf, now),
      unresponsive: deps.tabs.unresponsive,
    });
    this.vacancies = new VacancyWatch(opts.vacancyAlertMs, {
      nStages: this.nStages,
      isVacant: (s) => deps.stages.isVacant(s),
      metrics: deps.metrics,
      events: deps.events,
      log: deps.log,
      changed: () => this.broadcastStatus(),
    });
    deps.metrics.stages.set(this.nStages);
  }

  /** `--dp diloco`'s sync (undefined in exact mode). */
  get diloco(): DilocoSync | undefined {
    return this.deps.diloco;
  }

  get nStages(): number {
    return this.opts.settings.stages;
  }

  get state(): RunStatus['state'] {
    return this.runState;
  }

  get paused(): boolean {
    return this.isPaused;
  }

  // Read-only views of the run's progress (run-progress.ts owns it).
  get iteration(): number {
    return this.deps.progress.iteration;
  }
  get history(): readonly IterationRecord[] {
    return this.deps.progress.history;
  }
  get lastTrainLoss(): number | null {
    return this.deps.progress.lastTrainLoss;
  }
  get lastValLoss(): number | null {
    return this.deps.progress.lastValLoss;
  }

  status(): RunStatus {
    const { stages, placement, progress } = this.deps;
    return {
      state: this.runState,
      iteration: progress.iteration,
      stages: this.nStages,
      needed: Math.max(0, stages.vacantCount() - placement.waitingCount()),
      needsVolunteer: this.vacancies.alerts(),
      trainLoss: progress.lastTrainLoss,
      valLoss: progress.lastValLoss,
      ...(this.skips ? { skip: { ratio: this.skips.opts.skipRatio, vacant: this.vacancySkip.skipped().map((x) => x.stage), visits: this.lastVisits } } : {}),
    };
  }

  broadcastStatus(): void {
    this.deps.broadcast.status(this.status());
  }

  /** Wakes the loop (a stage was filled, the run was resumed). */
  kick(): void {
    this.wake?.();
  }

  /** Holds the run after the current iteration (true) or lets it go on. */
  setPaused(paused: boolean): void {
    this.isPaused = paused;
    if (!paused) this.kick();
  }

  /** Calls `f` after every completed iteration, after the `onIteration` hook; returns an unsubscribe. */
  observe(f: (r: IterationRecord) => void | Promise<void>): () => void {
    this.observers.add(f);
    return () => this.observers.delete(f);
  }

  /** The pass results belong to now: a running pass, or the barrier's re-runs. */
  private activePass(): PipelinePass | null {
    if (this.pass) return this.pass;
    return this.barrier?.phase === BarrierPhase.Rerun ? this.barrier.pass : null;
  }

  /**
   * A tab no longer serves `stage` (the stage table already removed it). `last`: it was the
   * stage's last replica: its state was handed over (`handedOver`, the handoff rung) or the
   * recovery strategy rebuilds it; otherwise the replica rung re-runs its hops.
   */
  async tabLost(v: Volunteer, stage: number, last: boolean, how: { handedOver?: boolean; quarantined?: boolean } = {}): Promise<void> {
    this.deps.speeds.forget(v);
    this.screening.forget(v);
    this.review.forget(v);
    this.ownAudit.forget(v);
    this.hopTimes.forget(v);
    const pass = this.activePass();
    if (!last) {
      // During a pass (including a re-run at the barrier) its hops run again on a sibling now.
      // Otherwise, at the barrier, the barrier re-runs them if its gradient was not combined yet,
      // and later phases go on with the siblings (they hold the combined gradient).
      let rerun: number | null = null;
      if (pass) {
        try {
          rerun = pass.replicaLost(v, stage);
        } catch (e) {
          pass.abort(e as Error);
        }
      } else if (!this.barrier) rerun = 0;
      this.deps.ladder.replicaLost(stage, v, rerun);
      this.broadcastStatus();
      return;
    }
    const abandon = new IterationAbandoned(stage, pass?.inFlight() ?? []);
    pass?.abort(abandon);
    this.barrier?.abort(abandon);
    this.setState('recovering'); // every page hears at once that the run waits for the stage
    if (!how.handedOver) await this.deps.ladder.stageLost(stage, { distrust: how.quarantined ?? false });
    await this.deps.placement.fillVacancies();
    this.broadcastStatus(); // the rebuilt stage is ready now, or waits for a volunteer
    this.kick();
  }

  start(): void {
    this.loopDone = this.loop();
    this.watchdog.start();
    this.vacancies.start();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watchdog.stop();
    this.vacancies.stop();
    this.review.cancel('coordinator closing');
    this.activePass()?.abort(new Error('coordinator closing'));
    this.barrier?.abort(new Error('coordinator closing'));
    this.kick();
    await this.loopDone;
    this.skips?.close();
  }

  private async sleepUntilKicked(ms: number): Promise<void> {
    await new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      this.wake = () => {
        clearTimeout(t);
        r();
      };
    });
    this.wake = null;
  }

  private setState(next: RunStatus['state']): void {
    if (next === this.runState) return;
    this.runState = next;
    this.broadcastStatus();
  }

  private async loop(): Promise<void> {
    const { placement, stages, events, metrics, log, progress } = this.deps;
    while (!this.closed) {
      if (this.opts.maxIterations > 0 && progress.iteration >= this.opts.maxIterations) {
        if (this.runState !== 'paused') {
          this.runState = 'paused';
          events.add('run', `reached --max-iterations ${this.opts.maxIterations}; run finished`);
          this.broadcastStatus();
        }
        await this.sleepUntilKicked(1000);
        continue;
      }
      // Between iterations: a stage trained around (SkipPipe) is rebuilt for a waiting volunteer,
      // then waiting tabs join groups (they copy a replica's state now).
      await this.vacancySkip.rejoin(progress.iteration).catch((e: Error) => log.warn({ err: e.message }, 'rebuilding a skipped stage failed'));
      await this.auditSiblings.place().catch((e: Error) => log.warn({ err: e.message }, 'placing an audit sibling failed'));
      await placement.admit().catch((e: Error) => log.warn({ err: e.message }, 'placement failed'));
      // close() may have come during those awaits: it aborted no pass then, so start none.
      if (this.closed) break;
      if (this.isPaused || !(stages.ready() || this.vacancySkip.canTrain())) {
        // A lost stage keeps the run 'recovering' until it is served again, including while its
        // weights are still being rebuilt (it only becomes vacant once they are ready).
        this.setState(this.isPaused ? 'paused' : this.runState === 'recovering' ? 'recovering' : 'waiting');
        await this.sleepUntilKicked(500);
        continue;
      }
      this.setState('running');
      try {
        await this.runIteration();
      } catch (e) {
        if (e instanceof IterationAbandoned) {
          metrics.abandoned.inc();
          events.add('run', `iteration ${progress.iteration} abandoned: ${e.why} (microbatches in flight: ${e.lostMicrobatches.join(', ') || 'none'})`, {
            iteration: progress.iteration,
            stage: e.stage,
            lostMicrobatches: e.lostMicrobatches,
          });
          this.deps.broadcast.abandon(progress.iteration);
        } else if (!this.closed) {
          log.error({ err: (e as Error).message }, 'iteration failed');
          await this.sleepUntilKicked(500);
        }
      }
    }
  }

  /** A new pass of `kind` over `batches` for iteration `iteration`, with its own book of tasks. */
  private newPass(iteration: number, kind: PassKind, batches: Batch[]): PipelinePass {
    const { stages, speeds, metrics, tabs } = this.deps;
    const { config, settings } = this.opts;
    const book = new TaskBook({
      stages,
      speeds,
      metrics,
      hopTimes: this.hopTimes,
      sender: tabs.sender,
      reject: tabs.reject,
      frames: { shape: [settings.batch, config.seqLen, config.dModel], wire: wireOf(settings), maxBytes: this.maxFrameBytes() },
      times: this.answerTimes,
      timesKey: `task:${kind.name}`,
      // A training retry that audits a stage's own outlier runs that stage's hops without the suspect.
      ...(kind === this.train ? { skip: (v: Volunteer) => this.ownAudit.excluded(v) } : {}),
    });
    const attempt = ++this.attempt;
    return new PipelinePass(attempt, iteration, kind, batches, this.nStages, { stages, book, screening: this.screening, reject: tabs.reject, p2p: tabs.p2p, audit: tabs.p2p?.newAudit(attempt) });
  }

  /** The window of a training pass of M microbatches, from the current groups and measurements. */
  private trainWindow(M: number): InFlightWindow {
    const { stages, metrics } = this.deps;
    const w = inFlightWindow({
      stages: Array.from({ length: this.nStages }, (_, s) => this.hopTimes.stageTiming(stages.replicas(s))),
      microbatches: M,
      maxPerTab: this.opts.maxInFlight,
    });
    this.lastWindow = w;
    metrics.inFlightWindow.set(w.size);
    return w;
  }

  /** Microbatch `mb`'s block order in training iteration `iteration` when it follows a skip path (null: the full path). */
  trainOrder(iteration: number, mb: number): readonly number[] | null {
    return this.plan?.iteration === iteration ? (this.plan.paths.paths[mb] ?? null) : null;
  }

  /** SkipPipe: iteration `it`'s paths (null: full paths), the collision-aware scheduler fed with measured stage costs. */
  private planPaths(it: number): Promise<IterationPaths | null> {
    const { stages, speeds } = this.deps;
    if (!this.skips) return Promise.resolve(null);
    return this.skips.planned(it, this.vacancySkip.skippable(), () =>
      measuredStageCosts(Array.from({ length: this.nStages }, (_, s) => ({ taskMs: speeds.groupTaskMs(stages.replicas(s)), hopMs: this.hopTimes.stageTiming(stages.replicas(s)).hopMs }))),
    );
  }

  /** Resolves when no barrier is in progress (a handoff waits for it: the state is then post-step). */
  async whenBarrierDone(): Promise<void> {
    while (this.barrier) await this.barrier.done;
  }

  private async runIteration(): Promise<void> {
    const { settings, dataset, config } = this.opts;
    const { progress, stages, metrics, log } = this.deps;
    const it = progress.iteration;
    const t0 = Date.now();
    this.screening.beginIteration();
    this.ownAudit.beginAttempt(it);
    const batches = Array.from({ length: settings.microbatches }, (_, mb) => dataset.trainBatch(settings.seed, it, mb, settings.batch));
    const skip = await this.planPaths(it);
    this.plan = skip ? { iteration: it, paths: skip } : null;
    if (skip) this.vacancySkip.skipping(skip.vacant, it);
    const visits = skip ? this.skips!.visits(skip) : null;
    const pass = this.newPass(it, this.train, batches);
    let losses: number[];
    try {
      this.pass = pass;
      losses = await pass.run();
      this.pass = null;
      // A loss during the barrier aborts its waits at once (not after their timeouts).
      this.barrier = new Barrier(it, pass, {
        config,
        nStages: this.nStages,
        stages,
        transfer: this.deps.transfer,
        screening: this.screening,
        ask: this.ask,
        progress,
        metrics,
        events: this.deps.events,
        reject: this.deps.tabs.reject,
        quarantine: this.deps.tabs.quarantine,
        unresponsive: this.deps.tabs.unresponsive,
        stepTimeoutMs: this.opts.stepTimeoutMs,
        times: this.answerTimes,
        dpMode: dpOf(settings).mode,
        ...(visits ? { visited: visits.map((n) => n > 0) } : {}),
        review: this.review,
        ownAudit: this.ownAudit,
      });
      const acks = await this.barrier.run();
      this.review.applied(it);
      this.ownAudit.applied(it);
      this.screening.observeLoss(losses.reduce((a, b) => a + b, 0) / losses.length);
      this.barrier = null;
      progress.applied(it + 1, losses.reduce((a, b) => a + b, 0) / losses.length, acks.map((a) => (a ? { preClipNorm: a.preClipNorm, postClipNorm: a.postClipNorm, blockNorm: a.blockNorm } : null)));
      if (skip) this.skips!.commit(it, skip);
      this.lastVisits = visits;
    } finally {
      this.pass = null;
      this.barrier = null;
      pass.close();
    }
    // diloco: every H-th iteration the replicas of each stage average their pseudo-gradients.
    const sync = await this.deps.diloco?.afterStep(it);
    const iteration = progress.iteration;
    let valLoss: number | null = null;
    // Validation runs the full model: not while a stage is trained around for want of a tab (SkipPipe).
    if (this.opts.evalEvery > 0 && iteration % this.opts.evalEvery === 0 && stages.ready()) {
      valLoss = await this.validate().catch((e: Error) => {
        log.warn({ err: e.message }, 'validation failed');
        return null;
      });
    }
    const trainLoss = progress.lastTrainLoss!;
    const tokens = settings.microbatches * settings.batch * config.seqLen;
    const seconds = (Date.now() - t0) / 1000;
    metrics.trainLoss.set(trainLoss);
    metrics.tokens.inc(tokens);
    metrics.iterationSeconds.observe(seconds);
    const record: IterationRecord = {
      iteration,
      trainLoss,
      valLoss,
      seconds,
      time: Date.now(),
      tokens,
      stages: Array.from({ length: this.nStages }, (_, s) => {
        const v = stages.owner(s);
        return { stage: s, volunteer: v?.id ?? null, computeMs: v?.lastStepMs ?? null, norms: progress.lastNorms[s] ?? null };
      }),
      ...(skip ? { skip: { vacant: skip.vacant, visits: visits! } } : {}),
      ...(sync ? { dpSync: { bytes: sync.stages.reduce((n, r) => n + r.bytesUp + r.bytesDown, 0), seconds: sync.seconds, drift: sync.stages.map((r) => r.drift) } } : {}),
    };
    progress.record(record);
    log.info({ iteration, trainLoss: +trainLoss.toFixed(4), valLoss, seconds }, 'iteration');
    await this.deps.onIteration(record);
    for (const f of this.observers) await f(record);
    await this.deps.placement.rebalance(iteration);
    this.broadcastStatus();
  }

  /** The largest relayed frame of this run (header + payload). */
  maxFrameBytes(): number {
    return maxRelayFrameBytes(this.opts.settings.batch, this.opts.config.seqLen, this.opts.config.dModel, wireOf(this.opts.settings));
  }

  /** Route a task result from a volunteer (called by the socket layer after schema validation). */
  handleOut(v: Volunteer, meta: OutMeta, frame: Uint8Array | null): void {
    // A sibling's re-run of a suspect hop answers the audit, not the pass.
    if (this.review.onOut(v, meta, frame)) return;
    const pass = this.activePass();
    if (meta.attempt <= this.attempt && (!pass || meta.attempt < pass.attempt)) {
      // A result of an abandoned or finished attempt: late (or replayed); dropped, not an offence.
      this.deps.metrics.staleResults.inc();
      this.deps.metrics.rejected.inc({ reason: 'stale' });
      v.socket.emit('rejected', { reason: 'stale', message: `result for attempt ${meta.attempt}, which is over` });
      return;
    }
    if (!pass || meta.attempt !== pass.attempt || meta.iteration !== pass.iteration) {
      this.deps.tabs.reject(v, 'out_of_turn', `result for attempt ${meta.attempt} iteration ${meta.iteration}, which is not in progress`);
      return;
    }
    pass.onOut(v, meta, frame);
  }

  /** A sender's `p2p_fallback` (schema-checked): for the pass in progress; one of a pass that is over is dropped (its receiver answered or the pass was abandoned). */
  handleLateFallback(v: Volunteer, info: LateFallback, frame: Uint8Array): void {
    const pass = this.activePass();
    if (!pass || info.attempt !== pass.attempt || info.iteration !== pass.iteration) return void this.deps.metrics.staleResults.inc();
    pass.onLateFallback(v, info, frame);
  }

  /**
   * Validation loss through the plain pipeline path (no stash, no update), or through the stages
   * `stages` only (a partial model, SkipPipe: partial-eval-pass.ts; checked with evalOrder, and
   * not recorded as the run's validation loss). Call it between iterations (the run held).
   */
  async validate(stages?: readonly number[]): Promise<number> {
    const { settings, dataset } = this.opts;
    const batches = dataset.valBatches(this.opts.evalBatches, settings.batch);
    const kind = stages ? partialEvalPass(evalOrder(stages, this.nStages)) : evalPass;
    const pass = this.newPass(this.deps.progress.iteration, kind, batches);
    try {
      this.pass = pass;
      const losses = await pass.run();
      const v = losses.reduce((a, b) => a + b, 0) / losses.length;
      if (!stages) this.deps.progress.validated(v);
      return v;
    } finally {
      this.pass = null;
      pass.close();
    }
  }
}
