/**
 * One churn run: a strategy, an hourly failure rate, N iterations of the real in-process pipeline
 * (trainer/pipeline.ts runIteration / evaluate, CheckFree+ swaps included) with the failures
 * of a FailureSchedule injected at the start of slots, recovered as the strategy says:
 *
 *   checkfree    recoverLocally (weighted average; first/last stage: re-init from seed, reported)
 *   checkfree+   recoverLocally with swapped paths and the embedding/head replicas
 *   none         re-init the lost stage from the seed
 *   checkpoint   every K iterations snapshot every stage (weights + Adam state, exact); on a
 *                failure roll the whole model back to the last snapshot and redo the lost
 *                iterations (they are trained again and cost their time)
 *   redundant    the lost stage is restored, losslessly, from the copy its predecessor holds
 *                (Bamboo: stage s also runs stage s+1); if the copy holder failed in the same slot
 *                too, the stage is re-initialised from the seed
 *   stage-restore checkpoints as `checkpoint` (experiments/local-cpsr.ts); on a failure only the lost
 *                stage comes back from its last checkpoint, the others keep their state (no rollback)
 *   cpsr         the same, the lost stage's weights moved forward by its predictor, which is fitted
 *                on every stage's checkpoint history after every checkpoint (in the swarm a
 *                coordinator worker does this: its seconds are recorded in the trace's notes, not
 *                in the slots; the prediction itself delays the recovery and is priced)
 *
 * A slot is one executed iteration. Several stages failing in one slot are all lost at once: a
 * recovery that needs a stage lost in the same slot falls back to re-init from the seed.
 *
 * The trace records, per slot, what was measured (every task's seconds, the slot's in-process
 * seconds) and what happened (recoveries and the bytes they moved, rollbacks, checkpoints, replica
 * refreshes); cost-model.ts turns it into the modelled wall clock.
 *
 * Reuse: a run in which nothing ever changes the model relative to the failure-free run trains
 * exactly the failure-free trajectory: no failure at all, or only exact restores (a checkpoint
 * rollback replays iterations the failure-free run already trained, on the same data; a redundant
 * restore brings back the exact state). Such a run is derived from the executed failure-free run
 * with the same path order (deriveRun) instead of being computed again. tfjs on wasm/cpu is
 * deterministic, and the test suite checks that derived runs match executed ones.
 */
import * as tf from '../shared/model/tf.js';
import { Stage } from '../shared/model/stage.js';
import type { ResolvedConfig } from '../shared/model/config.js';
import { stageParamSpecs, sizeOf, isBlockParam } from '../shared/model/params.js';
import type { Batch, TokenDataset } from '../shared/data/dataset.js';
import { runIteration, evaluate } from '../trainer/pipeline.js';
import { usesSwap, type RecoveryStrategy } from '../shared/run-settings.js';
import { planRecovery } from '../shared/recovery/plan.js';
import type { AverageWeighting } from '../shared/recovery/average.js';
import { LocalReplicaStore, recoverLocally } from './local-recovery.js';
import { FailureSchedule } from './failures.js';
import type { ModelBytes, RecoveryCost, SlotCostInput } from './cost-model.js';
import { TaskTimer } from './task-timer.js';
import { restoreStage, snapshotStage, type StageSnapshot } from './stage-snapshot.js';
import { LocalCpsr } from './local-cpsr.js';
import { restoresOnlyLostStage, takesCheckpoints } from './checkpointed.js';

export interface RunContext {
  config: ResolvedConfig;
  dataset: TokenDataset;
  valBatches: Batch[];
  /** Sequences per microbatch and microbatches per iteration. */
  batch: number;
  microbatches: number;
  lr: number;
  /** Data and init seed. */
  seed: number;
  /** Iterations of progress each run must reach. */
  iterations: number;
  evalEvery: number;
  replicaEvery: number;
  lrScale: number;
  weighting: AverageWeighting;
  failureSeed: number;
  /** Failure-clock seconds per iteration (see failures.ts). */
  iterationSeconds: number;
  /** Stop a run after this many slots even if it has not reached `iterations` (checkpoint thrash). */
  maxSlots: number;
  bytes: ModelBytes;
}

export interface RunSpec {
  strategy: RecoveryStrategy;
  /** Hourly failure rate, percent. */
  rate: number;
  /** Checkpoint every K iterations (checkpoint, stage-restore, cpsr); null: only the initial state. */
  checkpointEvery: number | null;
}

export interface SlotRecord extends SlotCostInput {
  slot: number;
  /** Completed iterations after this slot (progress; goes back after a rollback). */
  iteration: number;
  trainLoss: number;
  valLoss: number | null;
  /** In-process seconds of the slot: recovery work, the iteration, checkpoint copies (not evaluation). */
  measuredSeconds: number;
  /** Stages lost at the start of this slot. */
  failed: number[];
  /** Progress the model was rolled back to (checkpoint), or null. */
  rollbackTo: number | null;
  events: string[];
}

export interface RunTrace {
  spec: RunSpec;
  swap: boolean;
  initialValLoss: number;
  slots: SlotRecord[];
  /** Set when the trajectory was derived from an executed failure-free run (see file comment). */
  derivedFrom: string | null;
  /** The run hit maxSlots before reaching the requested iterations. */
  stoppedAtCap: boolean;
  notes: string[];
}

/** Parameter bytes per stage, activation bytes per hop and the replicated parts, from the shapes. */
export function modelBytes(config: ResolvedConfig, nStages: number, batch: number): ModelBytes {
  const stage: number[] = [];
  let embed = 0;
  let head = 0;
  for (let s = 0; s < nStages; s++) {
    let n = 0;
    for (const spec of stageParamSpecs(config, s)) {
      const b = 4 * sizeOf(spec.shape);
      n += b;
      if (spec.name.startsWith('embed.')) embed += b;
      if (spec.name.startsWith('head.')) head += b;
    }
    stage.push(n);
  }
  return { stage, activation: batch * config.seqLen * config.dModel * 4, tokens: batch * config.seqLen * 4, embed, head };
}

/** Block parameter bytes of one stage (what a neighbour sends for an average or a copy). */
export function blockBytes(config: ResolvedConfig, stage: number): number {
  return stageParamSpecs(config, stage)
    .filter((s) => isBlockParam(s.name))
    .reduce((n, s) => n + 4 * sizeOf(s.shape), 0);
}

/** The stage holding stage `s`'s redundant copy (its predecessor, in a ring). */
export function redundantHolder(s: number, nStages: number): number {
  return (s - 1 + nStages) % nStages;
}

/** The replica parts refreshed at once (embedding owner -> holder, head owner -> holder). */
function replicaParts(bytes: ModelBytes, nStages: number): number[] {
  return nStages > 1 ? [bytes.embed, bytes.head] : [];
}

/**
 * Whether `spec` trains exactly the failure-free trajectory (so it can be derived from it): no
 * failure in its slots, or only exact restores: checkpoint rollbacks (weights + Adam restored, the
 * lost iterations replayed on the same data) and redundant restores whose copy holder survived.
 */
export function isDerivable(spec: RunSpec, ctx: Pick<RunContext, 'failureSeed' | 'iterationSeconds' | 'iterations'>, nStages: number): boolean {
  if (spec.strategy === 'checkpoint') return true;
  // stage-restore and cpsr change the model at every failure (the lost stage is stale or predicted)
  const sched = new FailureSchedule(ctx.failureSeed, nStages, spec.rate / 100, ctx.iterationSeconds);
  const fails = sched.failuresUpTo(ctx.iterations);
  if (fails.length === 0) return true;
  if (spec.strategy !== 'redundant' || nStages === 1) return false;
  return fails.every((f) => !fails.some((g) => g.slot === f.slot && g.stage === redundantHolder(f.stage, nStages)));
}

const fmt = (x: number | null) => (x === null ? '-' : x.toFixed(3));
const now = () => performance.now();

/** Executes one run (see the file comment). */
export async function executeRun(ctx: RunContext, spec: RunSpec, opts: { onSlot?: (r: SlotRecord) => void } = {}): Promise<RunTrace> {
  const cfg = ctx.config;
  const S = ctx.bytes.stage.length;
  const M = ctx.microbatches;
  const swap = usesSwap({ recovery: spec.strategy });
  const schedule = new FailureSchedule(ctx.failureSeed, S, spec.rate / 100, ctx.iterationSeconds);
  const stages = Array.from({ length: S }, (_, i) => new Stage(cfg, i, { lr: ctx.lr }));
  const timer = new TaskTimer();
  const store = swap ? new LocalReplicaStore(S, ctx.replicaEvery) : null;
  store?.maybeRefresh(stages, 0); // the initial replicas: the seed init, free (every tab can build it)
  const K = takesCheckpoints(spec.strategy) ? spec.checkpointEvery : null;
  const local = restoresOnlyLostStage(spec.strategy)
    ? new LocalCpsr(cfg, S, { interval: K ?? Number.MAX_SAFE_INTEGER, fitStages: spec.strategy === 'cpsr' ? undefined : [] })
    : null;
  local?.maybeCheckpoint(stages, 0); // the initial state, as the checkpoint strategy keeps it
  let fitSeconds = 0;
  let ckpt: { progress: number; snaps: StageSnapshot[] } | null =
    spec.strategy === 'checkpoint' ? { progress: 0, snaps: stages.map(snapshotStage) } : null;
  const trace: RunTrace = {
    spec,
    swap,
    initialValLoss: evaluate(stages, ctx.valBatches),
    slots: [],
    derivedFrom: null,
    stoppedAtCap: false,
    notes: [],
  };

  let progress = 0;
  let bestProgress = 0;
  let slot = 0;
  try {
    while (progress < ctx.iterations) {
      if (slot >= ctx.maxSlots) {
        trace.stoppedAtCap = true;
        trace.notes.push(`stopped after ${slot} slots at iteration ${progress} of ${ctx.iterations}`);
        break;
      }
      const t0 = now();
      const failed = schedule.failuresAt(slot);
      const events: string[] = [];
      const recoveries: RecoveryCost[] = [];
      const checkpointRestoreBytes: number[] = [];
      let rollbackTo: number | null = null;
      if (failed.length) {
        events.push(`lost stage${failed.length > 1 ? 's' : ''} ${failed.join(',')}`);
        if (spec.strategy === 'checkpoint') {
          const c = ckpt!;
          for (let i = 0; i < S; i++) {
            stages[i]!.dispose();
            stages[i] = restoreStage(cfg, c.snaps[i]!);
          }
          rollbackTo = c.progress;
          events.push(`rollback to ${c.progress} (redo ${progress - c.progress})`);
          for (const l of failed) {
            checkpointRestoreBytes.push(3 * ctx.bytes.stage[l]!);
            recoveries.push({ stage: l, method: 'checkpoint', fallback: false, sourceBytes: [], replicaRetakeBytes: [], needsReplacement: true, description: `stage ${l}: restore from checkpoint ${c.progress}` });
          }
          progress = c.progress;
        } else if (local && restoresOnlyLostStage(spec.strategy)) {
          // Every lost stage comes back from its own checkpoint: nothing depends on another lost stage.
          for (const l of failed) {
            const t1 = now();
            const ev = local.recover(stages, l, progress, spec.strategy);
            const predictSeconds = ev.predicted ? (now() - t1) / 1000 : 0;
            checkpointRestoreBytes.push(3 * ctx.bytes.stage[l]!);
            recoveries.push({ stage: l, method: spec.strategy, fallback: false, sourceBytes: [], replicaRetakeBytes: [], needsReplacement: true, computeSeconds: predictSeconds, description: ev.description });
            events.push(ev.description);
          }
        } else if (spec.strategy === 'redundant') {
          for (const l of failed) {
            const holder = redundantHolder(l, S);
            if (S === 1 || failed.includes(holder)) {
              recoverLocally(stages, l, 'none', { lr: ctx.lr, lrScale: 1 });
              const why = S === 1 ? 'no other stage' : `its copy holder, stage ${holder}, was lost too`;
              recoveries.push({ stage: l, method: 'reinit', fallback: true, sourceBytes: [], replicaRetakeBytes: [], needsReplacement: true, description: `stage ${l}: re-init from seed (${why})` });
              events.push(recoveries[recoveries.length - 1]!.description);
            } else {
              // The copy on `holder` is the stage's exact state (the holder ran the same work):
              // weights and Adam state make the round trip into a new Stage.
              const copy = snapshotStage(stages[l]!);
              stages[l]!.dispose();
              stages[l] = restoreStage(cfg, copy);
              const succ = (l + 1) % S;
              recoveries.push({
                stage: l,
                method: 'redundant',
                fallback: false,
                sourceBytes: [3 * ctx.bytes.stage[l]!, 3 * ctx.bytes.stage[succ]!],
                replicaRetakeBytes: [],
                needsReplacement: false,
                description: `stage ${l}: restored from the copy on stage ${holder}`,
              });
              events.push(recoveries[recoveries.length - 1]!.description);
            }
          }
        } else {
          for (const l of failed) store?.dropHeldBy(l);
          // Owners of the replicated parts first, so a holder rebuilt later re-takes fresh replicas.
          const order = [...failed].sort((a, b) => Number(b === 0 || b === S - 1) - Number(a === 0 || a === S - 1) || a - b);
          for (const l of order) {
            const plan = planRecovery(spec.strategy, l, S);
            const lostSources = plan.blockSources.filter((s) => failed.includes(s));
            const strategy: RecoveryStrategy = lostSources.length ? 'none' : spec.strategy;
            const before = store?.bytesSent ?? 0;
            const ev = recoverLocally(stages, l, strategy, {
              lr: ctx.lr,
              lrScale: spec.strategy === 'none' ? 1 : ctx.lrScale,
              replicas: store ?? undefined,
              weighting: ctx.weighting,
            });
            const retake = (store?.bytesSent ?? 0) - before;
            const blocks = blockBytes(cfg, plan.blockSources[0] ?? l);
            let sourceBytes: number[] = [];
            if (ev.method === 'average') sourceBytes = ev.sources.map((s) => blockBytes(cfg, s));
            else if (ev.method === 'copy') {
              sourceBytes = ev.replicaSource === null || ev.replicaSource === ev.sources[0] ? [ev.bytes] : [blocks, ev.bytes - blocks];
            }
            let description = ev.description;
            if (lostSources.length) description = `stage ${l}: re-init from seed (needed stage${lostSources.length > 1 ? 's' : ''} ${lostSources.join(',')}, lost in the same iteration)`;
            if (ev.method === 'average') description += ` (a=${fmt(ev.a)} b=${fmt(ev.b)})`;
            if (ev.fromSeed.length && ev.method !== 'reinit') description += ` [from seed: ${ev.fromSeed.join(',')}]`;
            recoveries.push({
              stage: l,
              method: ev.method,
              fallback: ev.fallback || lostSources.length > 0,
              sourceBytes,
              replicaRetakeBytes: retake > 0 ? [retake] : [],
              needsReplacement: true,
              description,
            });
            events.push(description);
          }
        }
      }

      timer.attach(stages);
      const it = progress;
      const batches = Array.from({ length: M }, (_, mb) => ctx.dataset.trainBatch(ctx.seed, it, mb, ctx.batch));
      timer.begin(S, M, swap);
      const { loss } = runIteration(stages, batches, { swap, iteration: it });
      const timing = timer.end();
      progress++;
      let checkpointSaved = false;
      let slotFitSeconds = 0;
      if (local && K !== null && progress % K === 0) {
        const fitsBefore = local.fits.length;
        checkpointSaved = local.maybeCheckpoint(stages, progress);
        slotFitSeconds = local.fits.slice(fitsBefore).reduce((a, f) => a + f.outcome.seconds, 0);
        fitSeconds += slotFitSeconds;
        events.push(`checkpoint at ${progress}`);
      }
      if (ckpt && K !== null && progress % K === 0) {
        ckpt = { progress, snaps: stages.map(snapshotStage) };
        checkpointSaved = true;
        events.push(`checkpoint at ${progress}`);
      }
      let replicaRefreshBytes: number[] = [];
      if (store) {
        const before = store.bytesSent;
        if (store.maybeRefresh(stages, progress)) {
          replicaRefreshBytes = replicaParts(ctx.bytes, S);
          const sent = store.bytesSent - before;
          if (sent !== replicaRefreshBytes.reduce((a, b) => a + b, 0)) throw new Error(`replica refresh moved ${sent} bytes, expected ${replicaRefreshBytes.join('+')}`);
        }
      }
      const measuredSeconds = (now() - t0) / 1000 - slotFitSeconds; // fits run off the training path
      const evalNow = progress % ctx.evalEvery === 0 || progress === ctx.iterations;
      const valLoss = evalNow ? evaluate(stages, ctx.valBatches) : null;
      if (progress <= bestProgress) events.push('redo');
      bestProgress = Math.max(bestProgress, progress);
      const rec: SlotRecord = {
        slot,
        iteration: progress,
        trainLoss: loss,
        valLoss,
        measuredSeconds,
        failed,
        rollbackTo,
        events,
        timing,
        recoveries,
        checkpointRestoreBytes,
        checkpointSaved,
        replicaRefreshBytes,
      };
      trace.slots.push(rec);
      opts.onSlot?.(rec);
      slot++;
      await tf.nextFrame?.();
    }
  } finally {
    stages.forEach((s) => s.dispose());
    local?.dispose();
  }
  if (local && spec.strategy === 'cpsr') {
    const usable = local.fits.filter((f) => f.outcome.usable).length;
    trace.notes.push(`predictor: ${local.fits.length} fits (${usable} usable), ${fitSeconds.toFixed(1)} s of fitting off the training path (a coordinator worker in the swarm)`);
  }
  return trace;
}

/**
 * The trace `spec` would produce, built from an executed failure-free run with the same path order
 * (`isDerivable(spec)` must hold): slot by slot the strategy's failures, exact restores, rollbacks,
 * checkpoints and replica refreshes are recorded, and the iteration each slot trains is looked up
 * in the failure-free run (losses and measured task times; in-process recovery copies are not
 * part of a derived run's measured seconds).
 */
export type DeriveContext = Pick<RunContext, 'bytes' | 'failureSeed' | 'iterationSeconds' | 'iterations' | 'maxSlots'>;

export function deriveRun(ctx: DeriveContext, spec: RunSpec, base: RunTrace, baseName: string): RunTrace {
  const S = ctx.bytes.stage.length;
  const swap = usesSwap({ recovery: spec.strategy });
  if (base.swap !== swap) throw new Error(`cannot derive a ${swap ? 'swapped' : 'plain'} run from a ${base.swap ? 'swapped' : 'plain'} one`);
  if (!isDerivable(spec, ctx, S)) throw new Error(`${spec.strategy} at ${spec.rate}%/h changes the model: it must be executed`);
  if (base.slots.length < ctx.iterations || base.slots.some((s, i) => s.failed.length || s.iteration !== i + 1)) {
    throw new Error('the base run must be failure-free and complete');
  }
  const schedule = new FailureSchedule(ctx.failureSeed, S, spec.rate / 100, ctx.iterationSeconds);
  const K = takesCheckpoints(spec.strategy) ? spec.checkpointEvery : null;
  const trace: RunTrace = {
    spec,
    swap,
    initialValLoss: base.initialValLoss,
    slots: [],
    derivedFrom: baseName,
    stoppedAtCap: false,
    notes: [`derived from the executed failure-free run "${baseName}" (every restore in it is exact)`],
  };
  let progress = 0;
  let best = 0;
  let ckpt = 0;
  for (let slot = 0; progress < ctx.iterations; slot++) {
    if (slot >= ctx.maxSlots) {
      trace.stoppedAtCap = true;
      trace.notes.push(`stopped after ${slot} slots at iteration ${progress} of ${ctx.iterations}`);
      break;
    }
    const failed = schedule.failuresAt(slot);
    const events: string[] = [];
    const recoveries: RecoveryCost[] = [];
    const checkpointRestoreBytes: number[] = [];
    let rollbackTo: number | null = null;
    if (failed.length) {
      events.push(`lost stage${failed.length > 1 ? 's' : ''} ${failed.join(',')}`);
      if (spec.strategy === 'checkpoint') {
        rollbackTo = ckpt;
        events.push(`rollback to ${ckpt} (redo ${progress - ckpt})`);
        for (const l of failed) {
          checkpointRestoreBytes.push(3 * ctx.bytes.stage[l]!);
          recoveries.push({ stage: l, method: 'checkpoint', fallback: false, sourceBytes: [], replicaRetakeBytes: [], needsReplacement: true, description: `stage ${l}: restore from checkpoint ${ckpt}` });
        }
        progress = ckpt;
      } else if (spec.strategy === 'redundant') {
        for (const l of failed) {
          recoveries.push({
            stage: l,
            method: 'redundant',
            fallback: false,
            sourceBytes: [3 * ctx.bytes.stage[l]!, 3 * ctx.bytes.stage[(l + 1) % S]!],
            replicaRetakeBytes: [],
            needsReplacement: false,
            description: `stage ${l}: restored from the copy on stage ${redundantHolder(l, S)}`,
          });
          events.push(recoveries[recoveries.length - 1]!.description);
        }
      } else {
        throw new Error(`${spec.strategy} cannot be derived through a failure (slot ${slot})`);
      }
    }
    const b = base.slots[progress]!;
    progress++;
    const checkpointSaved = K !== null && progress % K === 0;
    if (checkpointSaved) {
      ckpt = progress;
      events.push(`checkpoint at ${progress}`);
    }
    if (progress <= best) events.push('redo');
    best = Math.max(best, progress);
    trace.slots.push({
      ...b,
      slot,
      iteration: progress,
      failed,
      rollbackTo,
      events,
      recoveries,
      checkpointRestoreBytes,
      checkpointSaved,
      replicaRefreshBytes: swap ? b.replicaRefreshBytes : [],
    });
  }
  return trace;
}
