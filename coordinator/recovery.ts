/**
 * Recovery in the swarm: when a stage's tab is lost, rebuild the stage from its neighbours'
 * weights (CheckFree), from a copy of its neighbour plus the embedding/head replica
 * (CheckFree+), or from the seed; hand the rebuilt weights to a spare (or the next tab that
 * joins) with a fresh Adam at lr_scale * lr. Also keeps CheckFree+'s replicas fresh.
 *
 * The maths lives in shared/recovery (pure functions, unit-tested); this module only fetches
 * weights from tabs, applies the plan, and reports every recovery as an event and metrics.
 */
import type { NamedWeights } from '../shared/model/stage.js';
import { youngDalyIntervalSeconds } from '../shared/recovery/failure-model.js';
import { planRecovery, type EdgePolicy, type RecoveryPlan } from '../shared/recovery/plan.js';
import { rebuildStageWeights } from '../shared/recovery/rebuild.js';
import { replicaHolders, type StageReplicas } from '../shared/recovery/replicas.js';
import type { AverageWeighting } from '../shared/recovery/average.js';
import { encodeStageState, encodeWeights } from '../shared/protocol/index.js';
import { checkStageState, checkWeights } from './bundle-check.js';
import type { WeightParts } from '../shared/protocol/events.js';
import { wireOf, type RecoveryStrategy } from '../shared/run-settings.js';
import type { Volunteer } from './registry.js';
import type { StageTable } from './stage-table.js';
import { askStage, ASK_TIMEOUT_MS, bytesReply, okReply } from './ask-stage.js';
import type { Scheduler, IterationRecord } from './scheduler.js';
import type { SwarmMetrics } from './metrics.js';
import type { EventLog } from './events-log.js';
import type { Logger } from './log.js';
import type { CheckpointStore } from './checkpoint-store.js';
import type { CheckpointRecord } from './store.js';

export interface RecoveryOptions {
  strategy: RecoveryStrategy;
  /** Checkpoint baseline: iterations between checkpoints, or 'auto' (Young/Daly). */
  checkpointEvery: number | 'auto';
  /** Failure rate assumed by the auto interval, per stage per hour (e.g. 0.1 = 10%/h). */
  expectedFailureRate: number;
  /** Where the checkpoint baseline writes stage states (checkpoint-store.ts keeps one folder per run under it). */
  checkpointDir: string;
  lrScale: number;
  /** Refresh CheckFree+'s embedding/head replicas every this many iterations (0 = never). */
  replicaEvery: number;
  weighting: AverageWeighting;
  /** Plain checkfree at the first/last stage: re-init from the seed (the paper) or copy the neighbour. */
  edge: EdgePolicy;
}

/** The recovery ladder: which rung handled a lost tab. */
export type RecoveryRung = 'replica' | 'handoff' | 'strategy';

export interface SwarmRecoveryEvent {
  stage: number;
  rung: RecoveryRung;
  strategy: RecoveryStrategy;
  method: RecoveryPlan['method'] | 'replica' | 'handoff';
  fallback: boolean;
  sources: { stage: number; part: string; bytes: number }[];
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

export class Recovery {
  /** Recoveries waiting for the next completed iteration to report their duration. */
  private open: SwarmRecoveryEvent[] = [];
  readonly done: SwarmRecoveryEvent[] = [];
  replicaBytes = 0;
  /** Bytes moved to keep redundant copies (redundant baseline). */
  redundantBytes = 0;
  /** Measured cost of the last checkpoint (seconds), for the auto interval. */
  checkpointSeconds: number | null = null;

  constructor(
    public opts: RecoveryOptions,
    private scheduler: Scheduler,
    private stages: StageTable,
    /** Tabs waiting for a stage (a rebuilt stage waits for one when there are none). */
    private waiting: () => number,
    private metrics: SwarmMetrics,
    private events: EventLog,
    private log: Logger,
    private checkpoints: CheckpointStore,
  ) {}

  /** The run's last checkpoint (recorded in SQLite, so it survives a restart). */
  get lastCheckpoint(): CheckpointRecord | null {
    return this.checkpoints.latest();
  }

  private async fetch(stage: number, parts: WeightParts): Promise<Uint8Array> {
    const owner = this.stages.owner(stage);
    if (!owner) throw new Error(`stage ${stage} has no volunteer`);
    return askStage(owner, 'get_weights', [{ parts }], bytesReply, parts === 'state' ? ASK_TIMEOUT_MS.state : ASK_TIMEOUT_MS.weights);
  }

  /** Called by the scheduler when `stage`'s volunteer is gone. Leaves the rebuilt stage vacant for a spare. */
  async onStageLost(stage: number, opts: { distrust?: boolean } = {}): Promise<void> {
    const S = this.scheduler.nStages;
    const detectedAt = Date.now();
    const config = this.scheduler.opts.config;
    this.stages.markRebuilding(stage);
    if (this.opts.strategy === 'checkpoint') return this.rollBack(stage, detectedAt);
    const notes: string[] = [];
    let plan = planRecovery(this.opts.strategy, stage, S, { edge: this.opts.edge });
    // A quarantined tab's own copies (its redundant copy, the replicas taken from it) are not
    // trusted to rebuild its stage: rebuild from the neighbours instead.
    if (opts.distrust && plan.method === 'redundant') {
      plan = planRecovery('checkfree', stage, S, { edge: this.opts.edge });
      notes.push('the lost tab was quarantined: its redundant copy is not used');
    }
    let bundle: Uint8Array | null = null;
    let sources: SwarmRecoveryEvent['sources'] = [];
    let bytesMoved = 0;
    let lrScale = this.opts.lrScale;
    if (plan.method === 'redundant') {
      const holder = (stage - 1 + S) % S;
      try {
        const raw = await this.fetch(holder, 'replica:stage');
        bytesMoved += raw.byteLength;
        bundle = encodeStageState(checkStageState(config, stage, raw));
        sources = [{ stage: holder, part: 'redundant-copy', bytes: bundle.byteLength }];
        lrScale = 1; // exact restore: same weights, same Adam state, same learning rate
      } catch (e) {
        notes.push(`redundant copy unavailable on stage ${holder} (${(e as Error).message}); re-initialised from the seed`);
        plan = { ...plan, method: 'reinit', fallback: true };
      }
    }
    if (plan.method === 'average' || plan.method === 'copy') {
      try {
        const weights: Partial<Record<number, NamedWeights>> = {};
        const replicas: Partial<Record<number, StageReplicas>> = {};
        for (const s of plan.blockSources) {
          const b = await this.fetch(s, 'all');
          bytesMoved += b.byteLength;
          weights[s] = checkWeights(config, s, b);
        }
        if (plan.replicaSource !== null && plan.replicaPart && opts.distrust) {
          notes.push(`the lost tab was quarantined: the ${plan.replicaPart} replica taken from it is not used`);
        } else if (plan.replicaSource !== null && plan.replicaPart) {
          const part = plan.replicaPart;
          try {
            const b = await this.fetch(plan.replicaSource, `replica:${part}`);
            bytesMoved += b.byteLength;
            // A replica holds only the lost stage's embedding (or head), all of it.
            replicas[plan.replicaSource] = { [part]: checkWeights(config, stage, b, { only: (n) => n.startsWith(`${part}.`) }) };
          } catch (e) {
            notes.push(`replica unavailable (${(e as Error).message})`);
          }
        }
        const norms = Object.fromEntries(this.scheduler.lastNorms.map((n, i) => [i, n]));
        const rebuilt = rebuildStageWeights(plan, { config: this.scheduler.opts.config, weights, norms, replicas, weighting: this.opts.weighting });
        notes.push(...rebuilt.details.notes);
        if (rebuilt.details.a !== null) notes.push(`a=${rebuilt.details.a.toFixed(4)} b=${rebuilt.details.b!.toFixed(4)} (${rebuilt.details.weighting})`);
        sources = rebuilt.details.sources;
        bundle = encodeWeights(rebuilt.weights);
      } catch (e) {
        notes.push(`${plan.method} failed (${(e as Error).message}); re-initialised from the seed`);
        plan = { ...plan, method: 'reinit', fallback: true };
        bundle = null;
      }
    }
    if (bundle) bytesMoved += bundle.byteLength; // to the replacement tab
    this.stages.setPending(stage, {
      weights: bundle,
      reason: `recovery:${plan.method}${plan.fallback ? ' (fallback)' : ''}`,
      lrScale,
    });
    this.openEvent({
      iteration: this.scheduler.iteration,
      stage,
      method: plan.method,
      fallback: plan.fallback,
      sources,
      bytesMoved,
      detectedAt,
      notes,
      description: plan.description,
    });
  }

  private openEvent(e: {
    iteration: number;
    stage: number;
    method: RecoveryPlan['method'];
    fallback: boolean;
    sources: SwarmRecoveryEvent['sources'];
    bytesMoved: number;
    detectedAt: number;
    notes: string[];
    description: string;
  }): void {
    const { stage, method, fallback, sources, bytesMoved, detectedAt, notes } = e;
    const plan = { method, fallback, description: e.description };
    const ev: SwarmRecoveryEvent = {
      stage,
      rung: 'strategy',
      strategy: this.opts.strategy,
      method: plan.method,
      fallback: plan.fallback,
      sources,
      bytesMoved,
      detectedAt,
      iteration: e.iteration,
      lossBefore: this.scheduler.lastTrainLoss,
      lossAfter: null,
      seconds: null,
      notes,
    };
    this.open.push(ev);
    this.metrics.recoveries.inc({ rung: 'strategy', method: plan.method });
    this.metrics.recoveryBytes.inc({ kind: 'recovery' }, bytesMoved);
    this.events.add(
      'recovery',
      `stage ${stage} lost at iteration ${ev.iteration}: ${plan.description}; ${plan.fallback ? 'FALLBACK to seed re-init; ' : ''}` +
        `${(bytesMoved / 1024).toFixed(1)} KiB moved${notes.length ? `; ${notes.join('; ')}` : ''}` +
        `${this.waiting() ? '' : '; waiting for a volunteer to join'}`,
      { ...ev },
    );
  }

  /** A replica was lost while its stage kept others: nothing rebuilt, `rerun` hops ran again on siblings. */
  noteReplicaRung(stage: number, v: Volunteer, rerun: number): void {
    this.noteRung(stage, 'replica', 0, [`${v.id} lost; ${this.stages.size(stage)} replica(s) continue; ${rerun} microbatch hop(s) run again on a sibling`]);
  }

  /** A stage's last replica left on purpose and handed its exact state over. */
  noteHandoff(stage: number, v: Volunteer, bytes: number): void {
    this.noteRung(stage, 'handoff', bytes, [`${v.id} left and handed over its exact weights and Adam state; the next tab continues from them`]);
  }

  private noteRung(stage: number, rung: 'replica' | 'handoff', bytesMoved: number, notes: string[]): void {
    const ev: SwarmRecoveryEvent = {
      stage,
      rung,
      strategy: this.opts.strategy,
      method: rung,
      fallback: false,
      sources: [],
      bytesMoved,
      detectedAt: Date.now(),
      iteration: this.scheduler.iteration,
      lossBefore: this.scheduler.lastTrainLoss,
      lossAfter: null,
      seconds: null,
      notes,
    };
    this.open.push(ev);
    this.metrics.recoveries.inc({ rung, method: rung });
    this.events.add('recovery', `stage ${stage} (${rung}): ${notes.join('; ')}`, { ...ev });
  }

  /**
   * After every completed iteration: close open recovery events, refresh replicas when due, and
   * at once after any rebuild (a rebuilt holder lost its replicas with its tab).
   */
  async afterIteration(r: IterationRecord): Promise<void> {
    const rebuilt = this.open.some((ev) => ev.rung !== 'replica' && ev.method !== 'checkpoint' && ev.method !== 'redundant');
    for (const ev of this.open) {
      ev.seconds = (r.time - ev.detectedAt) / 1000;
      ev.lossAfter = r.trainLoss;
      this.metrics.recoverySeconds.observe(ev.seconds);
      this.done.push(ev);
      this.events.add(
        'recovery',
        `stage ${ev.stage} recovered by ${ev.method}: ${ev.seconds.toFixed(2)} s to the next iteration, loss ${ev.lossBefore?.toFixed(4) ?? '-'} -> ${ev.lossAfter.toFixed(4)}`,
        { ...ev, completed: true },
      );
    }
    this.open = [];
    if (this.opts.strategy === 'checkpoint' && this.checkpointDue(r)) await this.checkpoint(r.iteration);
    if (this.opts.strategy === 'redundant') await this.refreshRedundantCopies();
    const keepsReplicas = this.opts.strategy === 'checkfree+' || (this.opts.strategy === 'checkfree' && this.opts.edge === 'copy');
    if (keepsReplicas && this.opts.replicaEvery > 0 && (rebuilt || r.iteration % this.opts.replicaEvery === 0)) {
      await this.refreshReplicas();
    }
  }

  /** Copies the embedding (stage 0) and head (stage S-1) to the tabs that hold their replicas. */
  async refreshReplicas(): Promise<void> {
    const S = this.scheduler.nStages;
    const holders = replicaHolders(S);
    for (const part of ['embed', 'head'] as const) {
      const holder = holders[part];
      if (holder === null) continue;
      const ownerStage = part === 'embed' ? 0 : S - 1;
      try {
        // Checked (and re-encoded from the checked values) before another tab stores it.
        const raw = await this.fetch(ownerStage, part);
        const bundle = encodeWeights(checkWeights(this.scheduler.opts.config, ownerStage, raw, { only: (n) => n.startsWith(`${part}.`) }));
        // Every replica of the holder stage keeps a copy: any of them may be the one left.
        for (const h of this.stages.replicas(holder)) {
          await askStage(h, 'put_replica', [{ part }, bundle], okReply, ASK_TIMEOUT_MS.replica);
          this.replicaBytes += 2 * bundle.byteLength;
          this.metrics.recoveryBytes.inc({ kind: 'replica' }, 2 * bundle.byteLength);
        }
      } catch (e) {
        this.log.warn({ part, err: (e as Error).message }, 'replica refresh failed');
      }
    }
  }

  /** Iterations between checkpoints now: fixed, or Young/Daly from the measured cost. */
  checkpointInterval(): number {
    if (this.opts.checkpointEvery !== 'auto') return Math.max(1, Math.round(this.opts.checkpointEvery));
    const hist = this.scheduler.history.slice(-20);
    const iterSeconds = hist.length ? hist.reduce((a, h) => a + h.seconds, 0) / hist.length : 1;
    const lambda = (this.opts.expectedFailureRate * this.scheduler.nStages) / 3600;
    const c = this.checkpointSeconds ?? iterSeconds; // before the first measurement: one iteration's worth
    const seconds = youngDalyIntervalSeconds(c, lambda);
    return Math.max(1, Math.min(10_000, Math.round(seconds / Math.max(iterSeconds, 1e-3))));
  }

  private checkpointDue(r: IterationRecord): boolean {
    if (!this.lastCheckpoint) return true;
    return r.iteration - this.lastCheckpoint.iteration >= this.checkpointInterval();
  }

  /** Every stage uploads weights + Adam state; the coordinator writes them to disk. */
  async checkpoint(iteration: number): Promise<void> {
    const t0 = Date.now();
    const states: Uint8Array[] = [];
    let written;
    try {
      for (let s = 0; s < this.scheduler.nStages; s++) states.push(await this.fetch(s, 'state'));
      written = this.checkpoints.write(iteration, states, t0);
    } catch (e) {
      // A lost tab or a full disk: training goes on, the previous checkpoint stays the one to roll back to.
      const prev = this.lastCheckpoint?.iteration;
      this.events.add('run', `checkpoint at iteration ${iteration} failed (${(e as Error).message}); ${prev === undefined ? 'no checkpoint yet' : `the one at iteration ${prev} stays`}`, { iteration, error: (e as Error).message });
      return;
    }
    const { bytes, seconds } = written;
    this.checkpointSeconds = seconds;
    this.metrics.recoveryBytes.inc({ kind: 'checkpoint' }, bytes);
    this.log.info({ iteration, bytes, seconds, next: this.checkpointInterval() }, 'checkpoint written');
  }

  /** Checkpoint baseline: the whole swarm rolls back to the last checkpoint. */
  private async rollBack(stage: number, detectedAt: number): Promise<void> {
    let ck = this.lastCheckpoint;
    let states: Uint8Array[] = [];
    const unusable: string[] = [];
    try {
      if (ck) states = this.checkpoints.read(ck);
    } catch (e) {
      unusable.push(`the checkpoint at iteration ${ck!.iteration} is unusable (${(e as Error).message})`);
      ck = null;
    }
    const target = ck?.iteration ?? 0;
    const lostAt = this.scheduler.iteration;
    const lostIterations = lostAt - target;
    let bytesMoved = 0;
    const S = this.scheduler.nStages;
    for (let s = 0; s < S; s++) {
      const state = ck ? states[s]! : null;
      if (state) bytesMoved += state.byteLength;
      const live = this.stages.replicas(s);
      if (live.length > 0) {
        const assignment = { stage: s, config: this.scheduler.opts.config, lr: this.scheduler.opts.settings.lr, weights: state, reason: `rollback to iteration ${target}`, wire: wireOf(this.scheduler.opts.settings) };
        for (const owner of live) {
          await askStage(owner, 'assign', [assignment], okReply, ASK_TIMEOUT_MS.state).catch((e: Error) =>
            this.log.warn({ stage: s, volunteer: owner.id, err: e.message }, 'rollback of a live stage failed'),
          );
        }
      } else {
        this.stages.setPending(s, { weights: state, reason: `rollback to iteration ${target}`, lrScale: 1 });
      }
    }
    this.scheduler.iteration = target;
    this.metrics.iteration.set(target);
    this.openEvent({
      iteration: lostAt,
      stage,
      method: 'checkpoint',
      fallback: !ck,
      sources: ck ? [{ stage: -1, part: `checkpoint@${target}`, bytes: bytesMoved }] : [],
      bytesMoved,
      detectedAt,
      notes: [...unusable, `rolled back ${lostIterations} iteration(s) to ${ck ? `the checkpoint at iteration ${target}` : 'the start: every stage re-initialised from the seed (no usable checkpoint)'}`],
      description: `checkpoint: whole swarm rolls back to iteration ${target}`,
    });
  }

  /**
   * A restarted coordinator whose tabs all stayed away: every stage restarts from the run's last
   * checkpoint (the iteration it returns) instead of the seed; null when there is none usable.
   */
  restoreCheckpoint(): number | null {
    const ck = this.lastCheckpoint;
    if (!ck || ck.files.length !== this.scheduler.nStages) return null;
    let states: Uint8Array[];
    try {
      states = this.checkpoints.read(ck);
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'checkpoint unusable for the resume');
      return null;
    }
    for (const [s, state] of states.entries()) this.stages.setPending(s, { weights: state, reason: `resume from the checkpoint at iteration ${ck.iteration}`, lrScale: 1 });
    this.scheduler.iteration = ck.iteration;
    this.metrics.iteration.set(ck.iteration);
    return ck.iteration;
  }

  /** Redundant baseline: every stage's full state is copied to its predecessor's tab each iteration. */
  async refreshRedundantCopies(): Promise<void> {
    const S = this.scheduler.nStages;
    if (S < 2) return;
    for (let s = 0; s < S; s++) {
      const holders = this.stages.replicas((s - 1 + S) % S);
      if (holders.length === 0) continue;
      try {
        const b = encodeStageState(checkStageState(this.scheduler.opts.config, s, await this.fetch(s, 'state')));
        for (const holder of holders) {
          await askStage(holder, 'put_replica', [{ part: 'stage' }, b], okReply, ASK_TIMEOUT_MS.state);
          this.redundantBytes += 2 * b.byteLength;
          this.metrics.recoveryBytes.inc({ kind: 'redundant' }, 2 * b.byteLength);
        }
      } catch (e) {
        this.log.warn({ stage: s, err: (e as Error).message }, 'redundant copy refresh failed');
      }
    }
  }
}
