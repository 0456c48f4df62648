/**
 * Recovery in the swarm: when a stage's tab is lost, rebuild the stage from its neighbours'
 * weights (CheckFree), from a copy of its neighbour plus the embedding/head replica
 * (CheckFree+), or from the seed; hand the rebuilt weights to a spare (or the next tab that
 * joins) with a fresh Adam at lr_scale * lr. Also keeps CheckFree+'s replicas fresh.
 *
 * The maths lives in shared/recovery (pure functions, unit-tested); this module only fetches
 * weights from tabs, applies the plan, and reports every recovery as an event and metrics.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { NamedWeights } from '../shared/model/stage.js';
import { youngDalyIntervalSeconds } from '../shared/recovery/failure-model.js';
import { planRecovery, type RecoveryPlan } from '../shared/recovery/plan.js';
import { rebuildStageWeights } from '../shared/recovery/rebuild.js';
import { replicaHolders, type StageReplicas } from '../shared/recovery/replicas.js';
import type { AverageWeighting } from '../shared/recovery/average.js';
import { decodeWeights, encodeWeights } from '../shared/protocol/index.js';
import type { WeightParts } from '../shared/protocol/events.js';
import { wireOf, type RecoveryStrategy } from '../shared/run-settings.js';
import type { Registry } from './registry.js';
import { askStage, ASK_TIMEOUT_MS, bytesReply, okReply } from './ask-stage.js';
import type { Scheduler, IterationRecord } from './scheduler.js';
import type { SwarmMetrics } from './metrics.js';
import type { EventLog } from './events-log.js';
import type { Logger } from './log.js';

export interface RecoveryOptions {
  strategy: RecoveryStrategy;
  /** Checkpoint baseline: iterations between checkpoints, or 'auto' (Young/Daly). */
  checkpointEvery: number | 'auto';
  /** Failure rate assumed by the auto interval, per stage per hour (e.g. 0.1 = 10%/h). */
  expectedFailureRate: number;
  /** Where the checkpoint baseline writes stage states. */
  checkpointDir: string;
  lrScale: number;
  /** Refresh CheckFree+'s embedding/head replicas every this many iterations (0 = never). */
  replicaEvery: number;
  weighting: AverageWeighting;
}

interface Checkpoint {
  iteration: number;
  files: string[];
  bytes: number;
  seconds: number;
}

export interface SwarmRecoveryEvent {
  stage: number;
  strategy: RecoveryStrategy;
  method: RecoveryPlan['method'];
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
  lastCheckpoint: Checkpoint | null = null;
  /** Measured cost of the last checkpoint (seconds), for the auto interval. */
  checkpointSeconds: number | null = null;

  constructor(
    public opts: RecoveryOptions,
    private scheduler: Scheduler,
    private registry: Registry,
    private metrics: SwarmMetrics,
    private events: EventLog,
    private log: Logger,
  ) {}

  private async fetch(stage: number, parts: WeightParts): Promise<Uint8Array> {
    const owner = this.registry.owner(stage);
    if (!owner) throw new Error(`stage ${stage} has no volunteer`);
    return askStage(owner, 'get_weights', [{ parts }], bytesReply, parts === 'state' ? ASK_TIMEOUT_MS.state : ASK_TIMEOUT_MS.weights);
  }

  /** Called by the scheduler when `stage`'s volunteer is gone. Leaves the rebuilt stage vacant for a spare. */
  async onStageLost(stage: number): Promise<void> {
    const S = this.scheduler.nStages;
    const detectedAt = Date.now();
    if (this.opts.strategy === 'checkpoint') return this.rollBack(stage, detectedAt);
    let plan = planRecovery(this.opts.strategy, stage, S);
    const notes: string[] = [];
    let bundle: Uint8Array | null = null;
    let sources: SwarmRecoveryEvent['sources'] = [];
    let bytesMoved = 0;
    let lrScale = this.opts.lrScale;
    if (plan.method === 'redundant') {
      const holder = (stage - 1 + S) % S;
      try {
        bundle = await this.fetch(holder, 'replica:stage');
        bytesMoved += bundle.byteLength;
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
          weights[s] = decodeWeights(b);
        }
        if (plan.replicaSource !== null && plan.replicaPart) {
          try {
            const b = await this.fetch(plan.replicaSource, `replica:${plan.replicaPart}`);
            bytesMoved += b.byteLength;
            replicas[plan.replicaSource] = { [plan.replicaPart]: decodeWeights(b) };
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
    this.scheduler.vacant.set(stage, {
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
    this.metrics.recoveries.inc({ method: plan.method });
    this.metrics.recoveryBytes.inc({ kind: 'recovery' }, bytesMoved);
    this.events.add(
      'recovery',
      `stage ${stage} lost at iteration ${ev.iteration}: ${plan.description}; ${plan.fallback ? 'FALLBACK to seed re-init; ' : ''}` +
        `${(bytesMoved / 1024).toFixed(1)} KiB moved${notes.length ? `; ${notes.join('; ')}` : ''}` +
        `${this.registry.spares().length ? '' : '; waiting for a volunteer to join'}`,
      { ...ev },
    );
  }

  /** After every completed iteration: close open recovery events, refresh replicas when due. */
  async afterIteration(r: IterationRecord): Promise<void> {
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
    if (this.opts.strategy === 'checkfree+' && this.opts.replicaEvery > 0 && r.iteration % this.opts.replicaEvery === 0) {
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
        const bundle = await this.fetch(ownerStage, part);
        const h = this.registry.owner(holder);
        if (!h) continue;
        await askStage(h, 'put_replica', [{ part }, bundle], okReply, ASK_TIMEOUT_MS.replica);
        this.replicaBytes += 2 * bundle.byteLength;
        this.metrics.recoveryBytes.inc({ kind: 'replica' }, 2 * bundle.byteLength);
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
    const dir = join(this.opts.checkpointDir, `iter-${iteration}`);
    mkdirSync(dir, { recursive: true });
    const files: string[] = [];
    let bytes = 0;
    for (let s = 0; s < this.scheduler.nStages; s++) {
      const b = await this.fetch(s, 'state');
      const f = join(dir, `stage-${s}.bin`);
      writeFileSync(f, b);
      files.push(f);
      bytes += b.byteLength;
    }
    const seconds = (Date.now() - t0) / 1000;
    const previous = this.lastCheckpoint;
    this.lastCheckpoint = { iteration, files, bytes, seconds };
    this.checkpointSeconds = seconds;
    this.metrics.recoveryBytes.inc({ kind: 'checkpoint' }, bytes);
    if (previous) rmSync(dirname(previous.files[0]!), { recursive: true, force: true });
    this.log.info({ iteration, bytes, seconds, next: this.checkpointInterval() }, 'checkpoint written');
  }

  /** Checkpoint baseline: the whole swarm rolls back to the last checkpoint. */
  private async rollBack(stage: number, detectedAt: number): Promise<void> {
    const ck = this.lastCheckpoint;
    const target = ck?.iteration ?? 0;
    const lostAt = this.scheduler.iteration;
    const lostIterations = lostAt - target;
    const states = ck ? ck.files.map((f) => new Uint8Array(readFileSync(f))) : [];
    let bytesMoved = 0;
    const S = this.scheduler.nStages;
    for (let s = 0; s < S; s++) {
      const state = ck ? states[s]! : null;
      if (state) bytesMoved += state.byteLength;
      const owner = this.registry.owner(s);
      if (s !== stage && owner) {
        const assignment = { stage: s, config: this.scheduler.opts.config, lr: this.scheduler.opts.settings.lr, wire: wireOf(this.scheduler.opts.settings), weights: state, reason: `rollback to iteration ${target}` };
        await askStage(owner, 'assign', [assignment], okReply, ASK_TIMEOUT_MS.state).catch((e: Error) =>
          this.log.warn({ stage: s, err: e.message }, 'rollback of a live stage failed'),
        );
      } else {
        this.scheduler.vacant.set(s, { weights: state, reason: `rollback to iteration ${target}`, lrScale: 1 });
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
      notes: [`rolled back ${lostIterations} iteration(s) to ${ck ? `the checkpoint at iteration ${target}` : 'the start (no checkpoint yet)'}`],
      description: `checkpoint: whole swarm rolls back to iteration ${target}`,
    });
  }

  /** Redundant baseline: every stage's full state is copied to its predecessor's tab each iteration. */
  async refreshRedundantCopies(): Promise<void> {
    const S = this.scheduler.nStages;
    if (S < 2) return;
    for (let s = 0; s < S; s++) {
      const holder = this.registry.owner((s - 1 + S) % S);
      if (!holder) continue;
      try {
        const b = await this.fetch(s, 'state');
        await askStage(holder, 'put_replica', [{ part: 'stage' }, b], okReply, ASK_TIMEOUT_MS.state);
        this.redundantBytes += 2 * b.byteLength;
        this.metrics.recoveryBytes.inc({ kind: 'redundant' }, 2 * b.byteLength);
      } catch (e) {
        this.log.warn({ stage: s, err: (e as Error).message }, 'redundant copy refresh failed');
      }
    }
  }
}
