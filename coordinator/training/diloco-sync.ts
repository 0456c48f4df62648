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
 *      accepted norms of the last syncs) leaves an outlier out, which is then quarantined;
 *   3. `dp_sync_apply` to every replica: the outer Nesterov step; then `afterApply` (the replicas'
 *      fingerprint check, replica-sync.ts: between syncs replicas differ by design, right after
 *      one they must be bit-identical).
 *
 * A replica lost before or during the sync is left out (its unsynced progress is lost, nothing
 * else); one that fails a put or the apply is dropped (it would hold other weights than its
 * group) and joins again with the group's state. No replica left: the sync of that stage is
 * abandoned and its replicas go on from their own weights (the next sync covers 2H iterations).
 */
import type { ResolvedConfig } from '../../shared/model/config.js';
import { stageParamSpecs } from '../../shared/model/params.js';
import { syncsAfter, type DpSettings } from '../../shared/dp/dp-settings.js';
import { flatLength } from '../../shared/dp/flat-weights.js';
import { PseudoGradSum, PseudoGradSumError, type CompletedChunk } from '../../shared/dp/pseudo-grad-sum.js';
import { decodeSyncChunk, encodeSyncChunk, syncChunkBytes, type ChunkRange } from '../../shared/dp/sync-chunks.js';
import { pseudoGradOutliers } from '../../shared/dp/screen-pseudo-gradients.js';
import { syncApplyReplySchema, syncGetReplySchema, syncOkReplySchema } from '../../shared/dp/sync-messages.js';
import { FrameError } from '../../shared/protocol/frame-error.js';
import { AskError, askStage, transferTimeoutMs } from '../tabs/ask-stage.js';
import type { Volunteer } from '../tabs/registry.js';
import type { SwarmMetrics } from '../record/metrics.js';
import type { EventLog } from '../record/events-log.js';
import type { Logger } from '../record/log.js';

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
  iteration: number;
  seconds: number;
  stages: StageSyncReport[];
}

export class DilocoSync {
  /** Accepted chunk norms of recent syncs, by `stage:chunk`. */
  private readonly history = new Map<string, number[]>();
  /** The last sync's report (null before the first). */
  last: SyncReport | null = null;
  /** Syncs completed. */
  count = 0;

  constructor(private deps: DilocoSyncDeps) {}

  /** Whether the groups sync after iteration `iteration`. */
  due(iteration: number): boolean {
    return syncsAfter(this.deps.dp, iteration);
  }

  /** After the step of `iteration`: syncs every stage when due (stages in parallel). */
  async afterStep(iteration: number): Promise<SyncReport | null> {
    if (!this.due(iteration)) return null;
    const t0 = performance.now();
    const stages = await Promise.all(Array.from({ length: this.deps.nStages }, (_, s) => this.syncStage(s, iteration)));
    const report: SyncReport = { iteration, seconds: (performance.now() - t0) / 1000, stages: stages.filter((r): r is StageSyncReport => r !== null) };
    this.deps.metrics.dpSyncSeconds.observe(report.seconds);
    this.last = report;
    this.count++;
    const up = report.stages.reduce((n, r) => n + r.bytesUp, 0);
    const down = report.stages.reduce((n, r) => n + r.bytesDown, 0);
    this.deps.events.add(
      'run',
      `diloco sync after iteration ${iteration}: ${(up / 1e6).toFixed(2)} MB up, ${(down / 1e6).toFixed(2)} MB down in ${report.seconds.toFixed(2)} s; drift ${report.stages.map((r) => r.drift.toFixed(3)).join(' / ')}`,
      { iteration, bytesUp: up, bytesDown: down, seconds: report.seconds, drift: report.stages.map((r) => r.drift) },
    );
    return report;
  }

  /** One stage's sync (null: the stage has no replica now). */
  async syncStage(stage: number, iteration: number): Promise<StageSyncReport | null> {
    const { deps } = this;
    const group = [...deps.replicas(stage)];
    if (group.length === 0) return null;
    const t0 = performance.now();
    const wire = deps.dp.wire;
    const total = flatLength(stageParamSpecs(deps.config, stage));
    const rejected: Volunteer[] = [];
    /** Per chunk, the norms the screen accepted (they join the history once the sync applies). */
    const accepted = new Map<number, number[]>();
    const screen = (norms: Map<Volunteer, number>, c: ChunkRange): Volunteer[] => {
      const slots = [...norms.keys()];
      const out = pseudoGradOutliers([...norms.values()], this.history.get(`${stage}:${c.index}`) ?? []).map((i) => slots[i]!);
      rejected.push(...out);
      accepted.set(c.index, slots.filter((v) => !out.includes(v)).map((v) => norms.get(v)!));
      return out;
    };
    const sum = new PseudoGradSum<Volunteer>(group, total, { screen });
    let bytesUp = 0;
    let bytesDown = 0;
    const report = (applied: boolean): StageSyncReport => ({
      stage,
      iteration,
      replicas: sum.replicas().length,
      rejected: rejected.map((v) => v.id),
      bytesUp,
      bytesDown,
      seconds: (performance.now() - t0) / 1000,
      drift: sum.drift(),
      applied,
    });
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
            bytesUp += frame.byteLength;
            let data: Float32Array;
            try {
              data = decodeSyncChunk(frame, { stage, iteration, direction: 'up', wire }, c);
            } catch (e) {
              if (!(e instanceof FrameError)) throw e;
              deps.reject(v, 'pseudo-gradient', e.message);
              return leave(v);
            }
            if (!sum.replicas().includes(v)) return; // dropped meanwhile
            const done = sum.add(v, c.index, data);
            if (done) completed.push(done);
          }),
        );
        for (const done of completed) bytesDown += await this.sendMean(sum, stage, iteration, done, timeoutMs);
      }
      if (!sum.complete()) throw new PseudoGradSumError(`stage ${stage}: no replica delivered every chunk`, []);
    } catch (e) {
      if (!(e instanceof PseudoGradSumError)) throw e;
      this.punish(rejected, stage, iteration);
      deps.events.add('run', `diloco sync of stage ${stage} after iteration ${iteration} abandoned (${e.message}): its replicas go on from their own weights`, { stage, iteration });
      return report(false);
    }
    this.punish(rejected, stage, iteration);
    // The accepted chunk norms feed the next syncs' screen of the same chunk.
    for (const [index, ns] of accepted) {
      const key = `${stage}:${index}`;
      this.history.set(key, [...(this.history.get(key) ?? []), ...ns].slice(-SCREEN_HISTORY * Math.max(1, group.length)));
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
    const r = report(true);
    deps.metrics.dpSyncBytes.inc({ stage: String(stage) }, bytesUp + bytesDown);
    deps.metrics.dpDrift.set({ stage: String(stage) }, r.drift);
    await deps.afterApply?.(stage, iteration).catch((e: Error) => deps.log.warn({ stage, err: e.message }, 'fingerprint check after a diloco sync failed'));
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

  /** Replicas the screen left out are quarantined, like a gradient outlier. */
  private punish(rejected: readonly Volunteer[], stage: number, iteration: number): void {
    for (const v of new Set(rejected)) this.deps.quarantine(v, `outlier pseudo-gradient of stage ${stage} at the sync after iteration ${iteration}`);
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
