/**
 * CheckFree and CheckFree+ (docs/recovery.md): a lost stage is rebuilt from its neighbours'
 * weights, the norm-weighted average of stages i-1 and i+1, or, for the stages averaging cannot
 * reach, a copy of the neighbour plus the embedding/head replica its tab keeps. The plan is the
 * pure decision in shared/recovery/plan.ts; the weights are computed by shared/recovery/rebuild.ts.
 * The rebuilt stage restarts Adam with lr_scale x lr.
 *
 * Strategies that copy an edge stage (checkfree+, and checkfree with `--edge copy`) keep the
 * embedding (stage 0) and head (stage S-1) replicas fresh on the holder stages' tabs.
 */
import type { GradNorms, NamedWeights } from '../../shared/model/stage.js';
import { planRecovery, type RecoveryPlan } from '../../shared/recovery/plan.js';
import { rebuildStageWeights } from '../../shared/recovery/rebuild.js';
import { replicaHolders, type StageReplicas } from '../../shared/recovery/replicas.js';
import { encodeWeights } from '../../shared/protocol/index.js';
import { checkWeights } from '../tabs/bundle-check.js';
import type { Volunteer } from '../tabs/registry.js';
import { askStage, ASK_TIMEOUT_MS, okReply, transferTimeoutMs } from '../tabs/ask-stage.js';
import type { StagePuller } from '../tabs/stage-puller.js';
import type { IterationRecord } from '../../shared/protocol/operator.js';
import type { LostStage, Rebuilt, RecoveryStrategy, RunShape, StrategySettings } from './recovery-strategy.js';
import type { Logger } from '../record/log.js';

export interface CheckFreeDeps {
  run: RunShape;
  settings: StrategySettings;
  puller: StagePuller;
  /** The tabs serving a stage now (every replica of a holder stage keeps the replicas). */
  replicas: (stage: number) => readonly Volunteer[];
  /** The stages' gradient norms of the last completed iteration (the average's weights). */
  lastNorms: () => readonly (GradNorms | null)[];
  /** Stages being rebuilt, or re-initialised from the seed and not trained since: no source to rebuild from. */
  unfit: () => ReadonlySet<number>;
  /** Bytes moved to keep the embedding/head replicas. */
  countReplicaBytes: (bytes: number) => void;
  log: Logger;
}

export class CheckFreeStrategy implements RecoveryStrategy {
  constructor(
    readonly name: 'checkfree' | 'checkfree+',
    private deps: CheckFreeDeps,
  ) {}

  /** The plan of this strategy for a lost `stage`. */
  plan(stage: number): RecoveryPlan {
    return planRecovery(this.name, stage, this.deps.run.nStages, { edge: this.deps.settings.edge });
  }

  /** Whether a lost edge stage is copied, so the embedding/head replicas must be kept. */
  get keepsReplicas(): boolean {
    const S = this.deps.run.nStages;
    return [0, S - 1].some((edge) => this.plan(edge).replicaPart !== null);
  }

  async rebuild(lost: LostStage, notes: string[] = []): Promise<Rebuilt> {
    const { run, settings, puller } = this.deps;
    const { stage } = lost;
    let plan = this.withoutUnfitSources(this.plan(stage), notes);
    let bytesMoved = 0;
    let bundle: Uint8Array | null = null;
    let sources: Rebuilt['sources'] = [];
    if (plan.method === 'average' || plan.method === 'copy') {
      try {
        const weights: Partial<Record<number, NamedWeights>> = {};
        const replicas: Partial<Record<number, StageReplicas>> = {};
        for (const s of plan.blockSources) {
          const got = await puller.pull(s, 'all', (raw) => checkWeights(run.config, s, raw));
          bytesMoved += got.bytes;
          weights[s] = got.value;
        }
        if (plan.replicaSource !== null && plan.replicaPart && lost.distrust) {
          notes.push(`the lost tab was quarantined: the ${plan.replicaPart} replica taken from it is not used`);
        } else if (plan.replicaSource !== null && plan.replicaPart) {
          const part = plan.replicaPart;
          try {
            // A replica holds only the lost stage's embedding (or head), all of it.
            const got = await puller.pull(plan.replicaSource, `replica:${part}`, (raw) => checkWeights(run.config, stage, raw, { only: (n) => n.startsWith(`${part}.`) }));
            bytesMoved += got.bytes;
            replicas[plan.replicaSource] = { [part]: got.value };
          } catch (e) {
            notes.push(`replica unavailable (${(e as Error).message})`);
          }
        }
        const norms = Object.fromEntries(this.deps.lastNorms().map((n, i) => [i, n]));
        const rebuilt = rebuildStageWeights(plan, { config: run.config, weights, norms, replicas, weighting: settings.weighting });
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
    return {
      method: plan.method,
      fallback: plan.fallback,
      description: plan.description,
      sources,
      bytesMoved,
      notes,
      handTo: { weights: bundle, reason: `recovery:${plan.method}${plan.fallback ? ' (fallback)' : ''}`, lrScale: settings.lrScale },
    };
  }

  async afterIteration(r: IterationRecord, restored: readonly number[]): Promise<void> {
    const every = this.deps.settings.replicaEvery;
    if (!this.keepsReplicas || every <= 0) return;
    // At once after a new tab took a stage (a holder's new tab has no replicas), else when due.
    if (restored.length > 0 || r.iteration % every === 0) await this.refreshReplicas();
  }

  resumeWithoutTabs(): number | null {
    return null;
  }

  /**
   * Two neighbouring stages lost together: the other one is being rebuilt, or came back from the
   * seed, and averaging (or copying) its weights would spoil this one. The plan uses only
   * neighbours that hold trained weights: an average becomes a copy of the trained neighbour;
   * with none left, the stage is re-initialised (a fallback).
   */
  private withoutUnfitSources(plan: RecoveryPlan, notes: string[]): RecoveryPlan {
    const unfit = this.deps.unfit();
    const untrained = plan.blockSources.filter((s) => unfit.has(s));
    if (untrained.length === 0) return plan;
    const trained = plan.blockSources.filter((s) => !unfit.has(s));
    notes.push(`stage(s) ${untrained.join(', ')} being rebuilt or back from the seed, not trained since: not used`);
    if (plan.method === 'average' && trained.length === 1) {
      return { ...plan, method: 'copy', blockSources: trained, description: `stage ${plan.lost}: copy blocks of stage ${trained[0]} (its other neighbour was re-initialised)` };
    }
    return { ...plan, method: 'reinit', blockSources: [], replicaSource: null, replicaPart: null, fallback: true, description: `stage ${plan.lost}: re-init from seed (no trained neighbour)` };
  }

  /** Copies the embedding (stage 0) and head (stage S-1) to the tabs that hold their replicas. */
  async refreshReplicas(): Promise<void> {
    const { run, puller } = this.deps;
    const S = run.nStages;
    const holders = replicaHolders(S);
    for (const part of ['embed', 'head'] as const) {
      const holder = holders[part];
      if (holder === null) continue;
      const ownerStage = part === 'embed' ? 0 : S - 1;
      try {
        // Checked (and re-encoded from the checked values) before another tab stores it.
        const got = await puller.pull(ownerStage, part, (raw) => checkWeights(run.config, ownerStage, raw, { only: (n) => n.startsWith(`${part}.`) }));
        const bundle = encodeWeights(got.value);
        // Every replica of the holder stage keeps a copy: any of them may be the one left.
        for (const h of this.deps.replicas(holder)) {
          await askStage(h, 'put_replica', [{ part }, bundle], okReply, transferTimeoutMs(ASK_TIMEOUT_MS.replica, bundle.byteLength));
          this.deps.countReplicaBytes(got.bytes + bundle.byteLength);
        }
      } catch (e) {
        this.deps.log.warn({ part, err: (e as Error).message }, 'replica refresh failed');
      }
    }
  }
}
