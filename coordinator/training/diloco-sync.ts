/**
 * `--dp diloco`: one sync round of every stage's group of replicas, after the step of every H-th
 * iteration (docs/data-parallel.md, "The algorithm"; the tab's side is
 * shared/dp/diloco-sync-session.ts). Per stage, in group-slot order:
 *
 *   1. for each chunk of the stage's flat pseudo-gradient, `dp_sync_get` from every replica in
 *      parallel; each frame is decoded and checked against the plan (decodeSyncChunk: a FrameError
 *      is an offence, the replica leaves the sync) and added to a streaming PseudoGradSum, which
 *      holds at most one chunk per replica and never a stage's weights;
 *   2. a completed chunk's mean is encoded once and the same bytes go to every replica still in
 *      (`dp_sync_put`); its screen (pseudoGradOutliers over the group's norms and this chunk's
 *      accepted norms of the last syncs) leaves an outlier out: unverifiable, it is reset to the
 *      group's synced state after the apply and put on probation (pseudo-grad-review.ts; without
 *      one, or with a non-finite norm, it is quarantined);
 *   3. `dp_sync_apply` to every replica: the outer Nesterov step; then `afterApply` (the replicas'
 *      fingerprint check, replica-sync.ts: between syncs replicas differ by design, right after
 *      one they must be bit-identical).
 *
 * A replica lost before or during the sync is left out (its unsynced progress is lost, nothing
 * else); one that fails a put or the apply is dropped (it would hold other weights than its
 * group) and joins again with the group's state. No replica left: the sync of that stage is
 * abandoned and its replicas go on from their own weights (the next sync covers 2H iterations).
 *
 * Streaming DiLoCo (`--dp-fragments F --dp-overlap tau`, shared/dp/streaming.ts): each sync covers
 * the fragment due after its iteration (chunks relative to it; the screen keeps norms per stage,
 * fragment and chunk). With tau = 0 the sync runs as above. With tau >= 1, `afterStep` waits only
 * until every replica answered the first chunk (the tab snapshots its pseudo-gradient then, before
 * the next iteration can step) and returns; the rest of the uplink and every mean chunk move
 * while the next iterations train, and the `dp_sync_apply` goes out after the step of iteration
 * t + tau (the tab merges into its weights then). The fingerprint check runs only with F = 1 and
 * tau = 0: otherwise replicas legitimately differ outside (or, mixed, inside) the synced fragment.
 */
import type { ResolvedConfig } from '../../shared/model/config.js';
import { stageParamSpecs } from '../../shared/model/params.js';
import { syncsAfter, type DpSettings } from '../../shared/dp/dp-settings.js';
import { flatLength } from '../../shared/dp/flat-weights.js';
import { PseudoGradSum, PseudoGradSumError, type CompletedChunk } from '../../shared/dp/pseudo-grad-sum.js';
import { decodeSyncChunk, encodeSyncChunk, syncChunkBytes, type ChunkRange } from '../../shared/dp/sync-chunks.js';
import { pseudoGradOutliers } from '../../shared/dp/screen-pseudo-gradients.js';
import { fragmentDueAfter, fragmentRanges, inWarmup, isPlainDiloco, streamingOf, type FragmentRange, type StreamingPlan } from '../../shared/dp/streaming.js';
import { syncApplyReplySchema, syncGetReplySchema, syncOkReplySchema } from '../../shared/dp/sync-messages.js';
import { FrameError } from '../../shared/protocol/frame-error.js';
import { AskError, askStage, transferTimeoutMs } from '../tabs/ask-stage.js';
import type { Volunteer } from '../tabs/registry.js';
import type { SwarmMetrics } from '../record/metrics.js';
import type { EventLog } from '../record/events-log.js';
import type { Logger } from '../record/log.js';
import type { PseudoGradReview } from '../screening/pseudo-grad-review.js';

/** Accepted norms kept per stage and chunk for the screen (the last syncs'). */
const SCREEN_HISTORY = 5;
/** Base time a tab may take per sync message, before the bytes' time on the slowest link. */
const SYNC_ASK_BASE_MS = 30_000;

export interface DilocoSyncDeps {
  config: ResolvedConfig;
  nStages: number;
  dp: DpSettings;
  /** The tabs serving a stage, in group-slot (joining) order. */
  replicas: (stage: number) => readonly Volunteer[];
  metrics: SwarmMetrics;
  events: EventLog;
  log: Logger;
  reject: (v: Volunteer, reason: string, message: string) => void;
  quarantine: (v: Volunteer, reason: string) => void;
  unresponsive: (v: Volunteer, why: string) => void;
  /** Right after a stage's apply (the fingerprint check of its replicas). */
  afterApply?: (stage: number, iteration: number) => Promise<unknown>;
  /** What happens to a replica the screen left out (pseudo-grad-review.ts); without it, it is quarantined. */
  outliers?: PseudoGradReview;
}

/** What one stage's sync did (the dashboard's and the benchmark's figures). */
export interface StageSyncReport {
  stage: number;
  iteration: number;
  /** Replicas whose pseudo-gradient is in the mean. */
  replicas: number;
  /** Ids of replicas left out by the screen. */
  rejected: string[];
  bytesUp: number;
  bytesDown: number;
  seconds: number;
  /** Mean over replicas of |pg_r - mean| / |mean| (PseudoGradSum.drift). */
  drift: number;
  /** False when no replica was left to average (the sync of this stage was abandoned). */
  applied: boolean;
}

export interface SyncReport {
  /** The iteration after which the sync started (its apply came `overlap` iterations later). */
  iteration: number;
  /** The fragment it synced (0 with one fragment). */
  fragment: number;
  seconds: number;
  stages: StageSyncReport[];
}

/** One stage's sync between its uplink and its apply. */
interface Collected {
  stage: number;
  iteration: number;
  fragment: FragmentRange;
  sum: PseudoGradSum<Volunteer>;
  rejected: Volunteer[];
  /** The chunk norm each rejected replica was left out for (its first). */
  rejectedNorms: Map<Volunteer, number>;
  accepted: Map<number, number[]>;
  groupSize: number;
  t0: number;
  bytesUp: number;
  bytesDown: number;
}

/** Every stage's sync started after one iteration, collecting (in the background when tau >= 1). */
interface Started {
  iteration: number;
  fragment: number;
  t0: number;
  stages: Promise<Collected | StageSyncReport | null>[];
}

export class DilocoSync {
  /** Accepted chunk norms of recent syncs, by `stage:fragment:chunk`. */
  private readonly history = new Map<string, number[]>();
  private readonly plan: StreamingPlan;
  /** A sync collecting in the background (tau >= 1), applied after the step of its iteration + tau. */
  private pending: Started | null = null;
  /** The last sync's report (null before the first). */
  last: SyncReport | null = null;
  /** Syncs completed. */
  count = 0;

  constructor(private deps: DilocoSyncDeps) {
    this.plan = streamingOf(deps.dp);
  }

  /** Whether the groups start a sync after iteration `iteration`. */
  due(iteration: number): boolean {
    return syncsAfter(this.deps.dp, iteration);
  }

  /** Whether a sync is under way (started, not yet applied): joins wait for it (a joiner would miss its apply). */
  get inFlight(): boolean {
    return this.pending !== null;
  }

  /**
   * After the step of `iteration`: applies the overlapped sync started tau iterations before, then
   * starts the sync due now (stages in parallel); with tau = 0 it completes here. Returns the
   * report of the sync applied now (null if none).
   */
  async afterStep(iteration: number): Promise<SyncReport | null> {
    let report: SyncReport | null = null;
    const pending = this.pending;
    if (pending && pending.iteration + this.plan.overlap === iteration) {
      this.pending = null;
      report = await this.finish(pending);
    }
    if (!this.due(iteration)) return report;
    const fragment = fragmentDueAfter(this.plan, iteration)!;
    const snaps: Promise<void>[] = [];
    const started: Started = {
      iteration,
      fragment,
      t0: performance.now(),
      stages: Array.from({ length: this.deps.nStages }, (_, s) => {
        let snapped!: () => void;
        snaps.push(new Promise<void>((resolve) => (snapped = resolve)));
        const c = this.collect(s, iteration, fragment, snapped);
        void c.then(snapped, snapped); // (also marks a failure handled: finish() awaits it and rethrows)
        return c;
      }),
    };
    if (this.plan.overlap === 0) return this.finish(started);
    // Every replica has snapshot its pseudo-gradient (the first chunk answered): training may go on.
    await Promise.all(snaps);
    this.pending = started;
    return report;
  }

  /** Applies every stage of a started sync as its collection ends; reports it. */
  private async finish(started: Started): Promise<SyncReport> {
    const stages = await Promise.all(started.stages.map(async (p) => {
      const c = await p;
      return c === null || !('sum' in c) ? c : this.applyStage(c);
    }));
    const report: SyncReport = { iteration: started.iteration, fragment: started.fragment, seconds: (performance.now() - started.t0) / 1000, stages: stages.filter((r): r is StageSyncReport => r !== null) };
    this.deps.metrics.dpSyncSeconds.observe(report.seconds);
    this.last = report;
    this.count++;
    const up = report.stages.reduce((n, r) => n + r.bytesUp, 0);
    const down = report.stages.reduce((n, r) => n + r.bytesDown, 0);
    const what = this.plan.fragments > 1 ? ` (fragment ${started.fragment} of ${this.plan.fragments})` : '';
    const when = this.plan.overlap > 0 ? `, applied after iteration ${started.iteration + this.plan.overlap}` : '';
    this.deps.events.add(
      'run',
      `diloco sync after iteration ${started.iteration}${what}: ${(up / 1e6).toFixed(2)} MB up, ${(down / 1e6).toFixed(2)} MB down in ${report.seconds.toFixed(2)} s${when}; drift ${report.stages.map((r) => r.drift.toFixed(3)).join(' / ')}`,
      { iteration: started.iteration, fragment: started.fragment, bytesUp: up, bytesDown: down, seconds: report.seconds, drift: report.stages.map((r) => r.drift) },
    );
    return report;
  }

  /** One stage's whole sync (null: the stage has no replica now). */
  async syncStage(stage: number, iteration: number): Promise<StageSyncReport | null> {
    const c = await this.collect(stage, iteration, fragmentDueAfter(this.plan, iteration) ?? 0, () => {});
    return c === null || !('sum' in c) ? c : this.applyStage(c);
  }

  private report(c: Collected, applied: boolean): StageSyncReport {
    return {
      stage: c.stage,
      iteration: c.iteration,
      replicas: c.sum.replicas().length,
      rejected: c.rejected.map((v) => v.id),
      bytesUp: c.bytesUp,
      bytesDown: c.bytesDown,
      seconds: (performance.now() - c.t0) / 1000,
      drift: c.sum.drift(),
      applied,
    };
  }

  /**
   * The uplink, screen, streaming sum and every mean chunk of one stage's sync of `fragmentIndex`;
   * `snapped` once every replica answered (or left) the first chunk. Returns what the apply needs,
   * or the report of an abandoned sync, or null (no replica).
   */
  private async collect(stage: number, iteration: number, fragmentIndex: number, snapped: () => void): Promise<Collected | StageSyncReport | null> {
    const { deps } = this;
    const group = [...deps.replicas(stage)];
    if (group.length === 0) return null;
    const t0 = performance.now();
    const wire = deps.dp.wire;
    const fragment = fragmentRanges(flatLength(stageParamSpecs(deps.config, stage)), this.plan.fragments)[fragmentIndex]!;
    const rejected: Volunteer[] = [];
    const rejectedNorms = new Map<Volunteer, number>();
    /** Per chunk, the norms the screen accepted (they join the history once the sync applies). */
    const accepted = new Map<number, number[]>();
    const screen = (norms: Map<Volunteer, number>, c: ChunkRange): Volunteer[] => {
      const slots = [...norms.keys()];
      const out = pseudoGradOutliers([...norms.values()], this.history.get(this.historyKey(stage, fragment.index, c.index, iteration)) ?? []).map((i) => slots[i]!);
      rejected.push(...out);
      for (const v of out) if (!rejectedNorms.has(v)) rejectedNorms.set(v, norms.get(v)!);
      accepted.set(c.index, slots.filter((v) => !out.includes(v)).map((v) => norms.get(v)!));
      return out;
    };
    const sum = new PseudoGradSum<Volunteer>(group, fragment.count, { screen });
    const col: Collected = { stage, iteration, fragment, sum, rejected, rejectedNorms, accepted, groupSize: group.length, t0, bytesUp: 0, bytesDown: 0 };
    try {
      for (const c of sum.chunks) {
        const timeoutMs = transferTimeoutMs(SYNC_ASK_BASE_MS, syncChunkBytes(c.count, wire));
        const completed: CompletedChunk[] = [];
        const leave = (v: Volunteer) => completed.push(...sum.drop(v));
        await Promise.all(
          sum.replicas().map(async (v) => {
            let frame: Uint8Array;
            try {
              const r = await askStage(v, 'dp_sync_get', [{ iteration, chunk: c.index }], syncGetReplySchema, timeoutMs);
              if ('error' in r) throw new AskError('refused', `${v.id} refused dp_sync_get: ${r.error}`);
              frame = r.frame instanceof Uint8Array ? r.frame : new Uint8Array(r.frame);
            } catch (e) {
              this.failed(v, e, `the pseudo-gradient chunk ${c.index} of the sync after iteration ${iteration}`);
              return leave(v);
            }
            col.bytesUp += frame.byteLength;
            let data: Float32Array;
            try {
              data = decodeSyncChunk(frame, { stage, iteration, direction: 'up', wire }, c);
            } catch (e) {
              if (!(e instanceof FrameError)) throw e;
              // Non-finite numbers are garbage, their own evidence (the connection layer quarantines).
              deps.reject(v, e.reason === 'nonfinite' ? 'nonfinite' : 'pseudo-gradient', e.message);
              return leave(v);
            }
            if (!sum.replicas().includes(v)) return; // dropped meanwhile
            const done = sum.add(v, c.index, data);
            if (done) completed.push(done);
          }),
        );
        snapped();
        for (const done of completed) col.bytesDown += await this.sendMean(sum, stage, iteration, done, timeoutMs);
      }
      if (!sum.complete()) throw new PseudoGradSumError(`stage ${stage}: no replica delivered every chunk`, []);
    } catch (e) {
      if (!(e instanceof PseudoGradSumError)) throw e;
      this.punish(col);
      deps.events.add('run', `diloco sync of stage ${stage} after iteration ${iteration} abandoned (${e.message}): its replicas go on from their own weights`, { stage, iteration });
      return this.report(col, false);
    }
    return col;
  }

  /** The apply of one stage's collected sync: `dp_sync_apply` to every replica still in, metrics, the fingerprint check (F = 1, tau = 0). */
  private async applyStage(col: Collected): Promise<StageSyncReport> {
    const { deps } = this;
    const { stage, iteration, sum } = col;
    const toReset = this.punish(col);
    // The accepted chunk norms feed the next syncs' screen of the same chunk.
    for (const [index, ns] of col.accepted) {
      const key = this.historyKey(stage, col.fragment.index, index, iteration);
      this.history.set(key, [...(this.history.get(key) ?? []), ...ns].slice(-SCREEN_HISTORY * Math.max(1, col.groupSize)));
    }
    await Promise.all(
      sum.replicas().map(async (v) => {
        try {
          const r = await askStage(v, 'dp_sync_apply', [{ iteration }], syncApplyReplySchema, SYNC_ASK_BASE_MS);
          if ('error' in r) throw new AskError('refused', `${v.id} refused dp_sync_apply: ${r.error}`);
        } catch (e) {
          this.failed(v, e, `the outer step after iteration ${iteration}`, true);
        }
      }),
    );
    // Left out (unverifiable): back to the group's synced state, before the fingerprint check.
    for (const v of toReset) if (deps.replicas(stage).includes(v)) await deps.outliers?.reset(v, stage, iteration);
    const r = this.report(col, true);
    deps.metrics.dpSyncBytes.inc({ stage: String(stage) }, col.bytesUp + col.bytesDown);
    deps.metrics.dpDrift.set({ stage: String(stage) }, r.drift);
    if (isPlainDiloco(this.plan)) await deps.afterApply?.(stage, iteration).catch((e: Error) => deps.log.warn({ stage, err: e.message }, 'fingerprint check after a diloco sync failed'));
    return r;
  }

  /** Encodes a completed chunk's mean once and sends it to every replica still in; returns the bytes sent. */
  private async sendMean(sum: PseudoGradSum<Volunteer>, stage: number, iteration: number, done: CompletedChunk, timeoutMs: number): Promise<number> {
    const frame = encodeSyncChunk({ stage, iteration, direction: 'down', wire: this.deps.dp.wire }, done.chunk, done.mean);
    let bytes = 0;
    await Promise.all(
      sum.replicas().map(async (v) => {
        bytes += frame.byteLength;
        try {
          const r = await askStage(v, 'dp_sync_put', [{ iteration, chunk: done.chunk.index }, frame], syncOkReplySchema, timeoutMs);
          if ('error' in r) throw new AskError('refused', `${v.id} refused dp_sync_put: ${r.error}`);
        } catch (e) {
          // It would apply another mean than its group: out of the sync, and dropped.
          sum.drop(v);
          this.failed(v, e, `the averaged chunk ${done.chunk.index} after iteration ${iteration}`, true);
        }
      }),
    );
    return bytes;
  }

  /** The screen history of one chunk of a stage's fragment; warm-up syncs (one iteration's progress, not H) keep their own. */
  private historyKey(stage: number, fragment: number, chunk: number, iteration: number): string {
    return `${stage}:${fragment}:${chunk}${inWarmup(this.plan, iteration) ? ':warmup' : ''}`;
  }

  /** Replicas the screen left out: judged (pseudo-grad-review.ts; else quarantined). Returns those to reset after the apply. */
  private punish(col: Collected): Volunteer[] {
    const { stage, iteration } = col;
    const reset: Volunteer[] = [];
    for (const v of new Set(col.rejected)) {
      if (!this.deps.outliers) this.deps.quarantine(v, `outlier pseudo-gradient of stage ${stage} at the sync after iteration ${iteration}`);
      else if (this.deps.outliers.leftOut(v, stage, iteration, col.rejectedNorms.get(v) ?? Number.NaN)) reset.push(v);
    }
    return reset;
  }

  /**
   * A failed request: an invalid reply is an offence; silence drops the tab; a tab that went away
   * is simply out. `mustDrop`: a tab that answered but cannot follow its group is dropped too.
   */
  private failed(v: Volunteer, e: unknown, what: string, mustDrop = false): void {
    const { deps } = this;
    if (e instanceof AskError && e.failure === 'invalid') deps.reject(v, 'pseudo-gradient', e.message);
    if (e instanceof AskError && e.failure === 'disconnected') return;
    if (e instanceof AskError && (e.failure === 'timeout' || e.failure === 'refused' || mustDrop)) deps.unresponsive(v, `no good answer for ${what}: ${e.message}`);
    else if (!(e instanceof AskError)) {
      deps.log.warn({ volunteer: v.id, err: (e as Error).message }, `diloco sync: ${what} failed`);
      if (mustDrop) deps.unresponsive(v, `${what} failed: ${(e as Error).message}`);
    }
  }
}
