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
import { planRecovery, type RecoveryPlan } from '../shared/recovery/plan.js';
import { rebuildStageWeights } from '../shared/recovery/rebuild.js';
import { replicaHolders, type StageReplicas } from '../shared/recovery/replicas.js';
import type { AverageWeighting } from '../shared/recovery/average.js';
import { decodeNamedTensors, encodeNamedTensors } from '../shared/protocol/index.js';
import type { WeightParts } from '../shared/protocol/events.js';
import type { RecoveryStrategy } from '../shared/run-settings.js';
import type { Registry, Volunteer } from './registry.js';
import type { Scheduler, IterationRecord } from './scheduler.js';
import type { SwarmMetrics } from './metrics.js';
import type { EventLog } from './events-log.js';
import type { Logger } from './log.js';

export interface RecoveryOptions {
  strategy: RecoveryStrategy;
  lrScale: number;
  /** Refresh CheckFree+'s embedding/head replicas every this many iterations (0 = never). */
  replicaEvery: number;
  weighting: AverageWeighting;
}

/** Strategies the swarm runs today (checkpoint and redundant exist only as local baselines). */
export const SWARM_STRATEGIES: readonly RecoveryStrategy[] = ['checkfree+', 'checkfree', 'none'];

export interface RecoveryEvent {
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

function toWeights(bundle: Uint8Array): NamedWeights {
  const out: NamedWeights = {};
  for (const [n, t] of Object.entries(decodeNamedTensors(bundle))) out[n] = t.data;
  return out;
}

export class Recovery {
  /** Recoveries waiting for the next completed iteration to report their duration. */
  private open: RecoveryEvent[] = [];
  readonly done: RecoveryEvent[] = [];
  replicaBytes = 0;

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
    const r = await owner.socket.timeout(30_000).emitWithAck('get_weights', { parts });
    if (!(r instanceof Uint8Array)) throw new Error(`stage ${stage} could not send ${parts}: ${(r as { error?: string }).error ?? 'bad reply'}`);
    return r;
  }

  /** Called by the scheduler when `stage`'s volunteer is gone. Leaves the rebuilt stage vacant for a spare. */
  async onStageLost(stage: number, _v: Volunteer): Promise<void> {
    const S = this.scheduler.nStages;
    const detectedAt = Date.now();
    let plan = planRecovery(this.opts.strategy, stage, S);
    const notes: string[] = [];
    let bundle: Uint8Array | null = null;
    let sources: RecoveryEvent['sources'] = [];
    let bytesMoved = 0;
    if (plan.method === 'average' || plan.method === 'copy') {
      try {
        const weights: Partial<Record<number, NamedWeights>> = {};
        const replicas: Partial<Record<number, StageReplicas>> = {};
        for (const s of plan.blockSources) {
          const b = await this.fetch(s, 'all');
          bytesMoved += b.byteLength;
          weights[s] = toWeights(b);
        }
        if (plan.replicaSource !== null && plan.replicaPart) {
          try {
            const b = await this.fetch(plan.replicaSource, `replica:${plan.replicaPart}`);
            bytesMoved += b.byteLength;
            replicas[plan.replicaSource] = { [plan.replicaPart]: toWeights(b) };
          } catch (e) {
            notes.push(`replica unavailable (${(e as Error).message})`);
          }
        }
        const norms = Object.fromEntries(this.scheduler.lastNorms.map((n, i) => [i, n]));
        const rebuilt = rebuildStageWeights(plan, { config: this.scheduler.opts.config, weights, norms, replicas, weighting: this.opts.weighting });
        notes.push(...rebuilt.details.notes);
        if (rebuilt.details.a !== null) notes.push(`a=${rebuilt.details.a.toFixed(4)} b=${rebuilt.details.b!.toFixed(4)} (${rebuilt.details.weighting})`);
        sources = rebuilt.details.sources;
        bundle = encodeNamedTensors(
          Object.fromEntries(Object.entries(rebuilt.weights).map(([n, d]) => [n, { shape: [d.length], data: d }])),
        );
      } catch (e) {
        notes.push(`${plan.method} failed (${(e as Error).message}); re-initialised from the seed`);
        plan = { ...plan, method: 'reinit', fallback: true };
        bundle = null;
      }
    }
    if (bundle) bytesMoved += bundle.byteLength; // to the replacement tab
    const ev: RecoveryEvent = {
      stage,
      strategy: this.opts.strategy,
      method: plan.method,
      fallback: plan.fallback,
      sources,
      bytesMoved,
      detectedAt,
      iteration: this.scheduler.iteration,
      lossBefore: this.scheduler.lastTrainLoss,
      lossAfter: null,
      seconds: null,
      notes,
    };
    this.open.push(ev);
    this.metrics.recoveries.inc({ method: plan.method });
    this.metrics.recoveryBytes.inc({ kind: 'recovery' }, bytesMoved);
    this.scheduler.vacant.set(stage, {
      weights: bundle,
      reason: `recovery:${plan.method}${plan.fallback ? ' (fallback)' : ''}`,
      lrScale: this.opts.lrScale,
    });
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
        const r = await h.socket.timeout(30_000).emitWithAck('put_replica', { part }, bundle);
        if (!r.ok) throw new Error(r.error);
        this.replicaBytes += 2 * bundle.byteLength;
        this.metrics.recoveryBytes.inc({ kind: 'replica' }, 2 * bundle.byteLength);
      } catch (e) {
        this.log.warn({ part, err: (e as Error).message }, 'replica refresh failed');
      }
    }
  }
}
