/**
 * The local trainer's diloco schedule (the reference the swarm's coordinator/training/diloco-sync.ts
 * must match): after the step of every iteration, first the sync started tau iterations before is
 * applied, then the fragment due now (shared/dp/streaming.ts) starts its sync, reading the
 * weights after this step; with tau = 0 it is applied at once. At most one sync is pending
 * (tau <= floor(H / F)), and the apply of one fragment and the start of another touch disjoint values.
 */
import type { Stage } from '../shared/model/stage.js';
import type { DpSettings } from '../shared/dp/dp-settings.js';
import type { DilocoReplica } from '../shared/dp/diloco-replica.js';
import { fragmentDueAfter, streamingOf, type StreamingPlan } from '../shared/dp/streaming.js';
import { dilocoSyncApply, dilocoSyncStart, type StartedSync, type SyncReport } from './replicated-pipeline.js';

export class DilocoReference {
  private pending: StartedSync | null = null;
  private readonly plan: StreamingPlan;

  constructor(
    private readonly groups: Stage[][],
    private readonly outer: DilocoReplica[][],
    private readonly dp: DpSettings,
  ) {
    this.plan = streamingOf(dp);
  }

  /** After the step of `iteration`: applies what is due, starts what is due; returns the report of a sync started now. */
  afterStep(iteration: number): SyncReport | null {
    if (this.pending && this.pending.iteration + this.plan.overlap === iteration) {
      dilocoSyncApply(this.groups, this.pending);
      this.pending = null;
    }
    if (fragmentDueAfter(this.plan, iteration) === null) return null;
    const started = dilocoSyncStart(this.groups, this.outer, iteration, this.dp.wire);
    if (this.plan.overlap === 0) dilocoSyncApply(this.groups, started);
    else this.pending = started;
    return started.report;
  }
}
