/**
 * The reference for data parallelism inside a stage: R replicas of each stage (groups[s][r], each
 * its own Stage), every hop of every microbatch run on the replica the run's assignment gives it
 * (shared/dp/replica-assignment.ts), then, at the end of the iteration, per `--dp`
 * (shared/dp/dp-settings.ts):
 *
 *   exact   the replicas' accumulated gradients are added in replica order as float32 (what
 *           coordinator/gradient-reduction.ts does), every replica receives the sum and takes the
 *           same clip + Adam step: the numbers of one unreplicated stage, up to float32 summation order.
 *   diloco  every replica clips and steps on its own accumulated gradient (a replica that ran no
 *           hop takes an empty step, as a tab would); after every `every`-th iteration
 *           `dilocoSync` runs the group's sync through exactly the frames, streaming sum and outer
 *           step the swarm uses (shared/dp), so a Node swarm can be compared with it.
 */
import type { Stage, NamedWeights, GradNorms } from '../shared/model/stage.js';
import type { Batch } from '../shared/data/dataset.js';
import { swapCounter } from '../shared/schedule/paths.js';
import type { WireEncoding } from '../shared/protocol/wire-encoding.js';
import type { DpSettings } from '../shared/dp/dp-settings.js';
import { DilocoReplica } from '../shared/dp/diloco-replica.js';
import { PseudoGradSum } from '../shared/dp/pseudo-grad-sum.js';
import { DilocoSyncSession } from '../shared/dp/diloco-sync-session.js';
import { decodeSyncChunk, encodeSyncChunk } from '../shared/dp/sync-chunks.js';
import { flattenWeights, unflattenWeights } from '../shared/dp/flat-weights.js';
import { sumSquares } from '../shared/dp/average.js';
import { streamingOf } from '../shared/dp/streaming.js';
import { runMicrobatchOn } from './pipeline.js';

export interface ReplicatedIterationResult {
  loss: number;
  /** Per stage, the norms of replica 0's step. */
  norms: GradNorms[];
}

/** Float32 sum of the replicas' gradients in replica order (a parameter only present where it was computed). */
export function sumGradients(parts: readonly NamedWeights[]): NamedWeights {
  const sum: NamedWeights = {};
  for (const g of parts) {
    for (const [name, a] of Object.entries(g)) {
      const acc = sum[name];
      if (!acc) sum[name] = Float32Array.from(a);
      else for (let j = 0; j < a.length; j++) acc[j]! += a[j]!;
    }
  }
  return sum;
}

/**
 * One iteration over replica groups. `hops[mb][i]` is the replica (index in its stage's group)
 * that runs hop i of microbatch mb.
 */
export function runReplicatedIteration(
  groups: Stage[][],
  batches: Batch[],
  opts: { swap: boolean; iteration: number; wire?: WireEncoding; hops: number[][]; mode: DpSettings['mode'] },
): ReplicatedIterationResult {
  let sum = 0;
  batches.forEach((b, mb) => {
    const row = opts.hops[mb]!;
    sum += runMicrobatchOn((i, stage) => groups[stage]![row[i]!]!, groups.length, mb, b, {
      swap: opts.swap,
      lossScale: 1 / batches.length,
      counter: swapCounter(opts.iteration, batches.length, mb),
      wire: opts.wire,
    });
  });
  const norms = groups.map((g) => {
    if (opts.mode === 'exact' && g.length > 1) {
      const total = sumGradients(g.map((r) => r.getGrads()));
      for (const r of g) r.setGrads(total);
    }
    return g.map((r) => r.clipAndStep())[0]!;
  });
  return { loss: sum / batches.length, norms };
}

export interface SyncReport {
  /** Bytes of every frame one replica sent and received in this sync (per stage). */
  bytesPerReplica: number[];
  /** L2 norm of the group's mean pseudo-gradient (per stage). */
  meanNorm: number[];
  /** Replicas' drift (PseudoGradSum.drift: mean over replicas of |pg_r - mean| / |mean|, decoded values; per stage; 0 with one replica). */
  drift: number[];
  /** Relative L2 error of the uplink encoding: |decoded - pg| / |pg| over the group (per stage). */
  uplinkError: number[];
}

/** A sync whose uplink and averaging are done, each replica holding every mean chunk; `dilocoSyncApply` takes the outer step. */
export interface StartedSync {
  iteration: number;
  sessions: DilocoSyncSession[][];
  report: SyncReport;
}

/**
 * A diloco sync of every group after `iteration` (of the fragment the plan syncs then, the whole
 * vector with one fragment): each replica uploads its pseudo-gradient's chunks (DilocoSyncSession,
 * the tab's side), the coordinator's streaming sum decodes, checks and averages them in replica
 * order and encodes each mean chunk once, every replica takes every mean chunk. The weights are
 * read now (after the step of `iteration`); the outer step waits for `dilocoSyncApply`.
 */
export function dilocoSyncStart(groups: Stage[][], outer: DilocoReplica[][], iteration: number, wire: WireEncoding): StartedSync {
  const report: SyncReport = { bytesPerReplica: [], meanNorm: [], drift: [], uplinkError: [] };
  const all = groups.map((g, s) => {
    const specs = g[0]!.specs;
    const current = g.map((r) => flattenWeights(specs, r.getWeights()));
    const reps = outer[s]!;
    const up = { stage: s, iteration, direction: 'up' as const, wire };
    const down = { ...up, direction: 'down' as const };
    // The tabs' side (DilocoSyncSession) and the coordinator's (decode, check, PseudoGradSum).
    const sessions = reps.map((rep, r) => new DilocoSyncSession(rep, iteration, current[r]!));
    const fragment = sessions[0]!.fragment;
    const sum = new PseudoGradSum(g.map((_, r) => r), fragment.count, { chunkValues: reps[0]!.chunkValues });
    let bytes = 0;
    const mean = new Float32Array(fragment.count);
    const decoded = g.map(() => new Float32Array(fragment.count));
    for (const c of sum.chunks) {
      for (let r = 0; r < g.length; r++) {
        const frame = sessions[r]!.uplink(c.index);
        if (r === 0) bytes += frame.byteLength;
        const data = decodeSyncChunk(frame, up, c);
        decoded[r]!.set(data, c.start);
        const done = sum.add(r, c.index, data);
        if (done) {
          const meanFrame = encodeSyncChunk(down, done.chunk, done.mean);
          bytes += meanFrame.byteLength;
          for (const s of sessions) s.acceptMean(c.index, meanFrame);
          mean.set(done.mean, c.start);
        }
      }
    }
    let errSq = 0;
    let pgSq = 0;
    reps.forEach((rep, r) => {
      const pg = rep.pseudoGradient(current[r]!, fragment);
      pgSq += sumSquares(pg);
      for (let i = 0; i < pg.length; i++) errSq += (decoded[r]![i]! - pg[i]!) ** 2;
    });
    report.bytesPerReplica.push(bytes);
    report.meanNorm.push(Math.sqrt(sumSquares(mean)));
    report.drift.push(sum.drift());
    report.uplinkError.push(pgSq > 0 ? Math.sqrt(errSq / pgSq) : 0);
    return sessions;
  });
  return { iteration, sessions: all, report };
}

/**
 * The outer step of a started sync in every replica, which loads the result into its stage (its
 * Adam state is kept): with tau = 0 the fragment's new synced values replace it, with tau >= 1
 * they are mixed with the replica's weights now (streaming.ts).
 */
export function dilocoSyncApply(groups: Stage[][], started: StartedSync): void {
  groups.forEach((g, s) => {
    const specs = g[0]!.specs;
    for (const [r, session] of started.sessions[s]!.entries()) {
      const now = flattenWeights(specs, g[r]!.getWeights());
      g[r]!.setWeights(unflattenWeights(specs, session.apply(now)));
    }
  });
}

/** A whole sync after `iteration`, applied at once (tau = 0). */
export function dilocoSync(groups: Stage[][], outer: DilocoReplica[][], iteration: number, wire: WireEncoding): SyncReport {
  const started = dilocoSyncStart(groups, outer, iteration, wire);
  dilocoSyncApply(groups, started);
  return started.report;
}

/** Fresh outer state for every replica: synced = the replica's weights now (identical in a group), zero momentum. */
export function startDiloco(groups: Stage[][], dp: DpSettings, chunkValues?: number): DilocoReplica[][] {
  return groups.map((g, s) =>
    g.map((r) => DilocoReplica.start(s, flattenWeights(r.specs, r.getWeights()), { lr: dp.outerLr, momentum: dp.outerMomentum, wire: dp.wire, streaming: streamingOf(dp) }, chunkValues)),
  );
}
