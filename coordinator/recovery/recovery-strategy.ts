/**
 * The last rung of the recovery ladder: what brings back a stage whose last tab is gone. One
 * object per strategy behind this interface (checkfree-strategy.ts, redundant-strategy.ts,
 * checkpoint-strategy.ts, reinit-strategy.ts); recovery.ts owns the ladder and its events and asks
 * the configured strategy only these three questions.
 */
import type { ResolvedConfig } from '../../shared/model/config.js';
import type { AverageWeighting } from '../../shared/recovery/average.js';
import type { EdgePolicy, RecoveryMethod } from '../../shared/recovery/plan.js';
import type { RecoveryStrategy as StrategyName } from '../../shared/run-settings.js';
import type { IterationRecord } from '../../shared/protocol/operator.js';
import type { PendingStage } from '../placement/stage-table.js';

export interface RebuildSource {
  stage: number;
  part: string;
  bytes: number;
}

/** How a lost stage came back. */
export interface Rebuilt {
  method: RecoveryMethod;
  /** The strategy could not apply and fell back (to the seed, or to an older state). */
  fallback: boolean;
  /** One line for the event feed. */
  description: string;
  sources: RebuildSource[];
  /** Bytes pulled from tabs and handed to the replacement. */
  bytesMoved: number;
  notes: string[];
  /**
   * The rebuilt state the next tab of the stage gets, or null when the strategy has already put
   * every stage where it must be (a checkpoint rollback).
   */
  handTo: PendingStage | null;
}

/** The lost stage: `distrust` when its tab was quarantined (its own copies must not be used). */
export interface LostStage {
  stage: number;
  distrust: boolean;
}

export interface RecoveryStrategy {
  readonly name: StrategyName;
  /** Rebuilds a stage whose last replica is gone. Never throws: a failure falls back and says so. */
  rebuild(lost: LostStage): Promise<Rebuilt>;
  /**
   * After every completed iteration: keep what the strategy needs fresh (replicas, redundant copies,
   * checkpoints). `restored` lists the stages a new tab took since the last call (their tabs lost
   * whatever the strategy had stored on the previous ones).
   */
  afterIteration(r: IterationRecord, restored: readonly number[]): Promise<void>;
  /**
   * A restarted coordinator whose tabs all stayed away: put every stage's restored state pending
   * and return the iteration the run continues from, or null when this strategy keeps nothing to
   * restart from (the run starts again from the seed).
   */
  resumeWithoutTabs(): number | null;
  /** Stops what the strategy runs in the background (CPSR's fitting worker). */
  close?(): Promise<void>;
}

/** The settings every strategy reads (`--lr-scale`, `--edge`, ...). */
export interface StrategySettings {
  /** Checkpoint baseline: iterations between checkpoints, 'auto' (Young/Daly) or 'cpsr' (CPSR's planner, eq. 16; Young/Daly until it can plan). */
  checkpointEvery: number | 'auto' | 'cpsr';
  /** `--checkpoint-every cpsr`: the curvature prior xi of the planner (loss per unit of N_p mse / 2). */
  cpsrXi?: number;
  /** `--recovery cpsr`: most of the wall time its fitting worker may spend fitting (cpsr-fitter.ts; default 1). */
  cpsrFitDuty?: number;
  /** `--recovery cpsr`: the predictor's bound on its held-out error over the plain restore's (`--cpsr-max-error`; default DEFAULT_PREDICTOR's 0.9). */
  cpsrMaxErrorRatio?: number;
  /** Failure rate assumed by the auto interval, per stage per hour (e.g. 0.1 = 10%/h). */
  expectedFailureRate: number;
  /** Where the checkpoint baseline writes stage states (checkpoint-store.ts keeps one folder per run under it). */
  checkpointDir: string;
  /** A rebuilt (not restored) stage restarts Adam with lr_scale x lr. */
  lrScale: number;
  /** Refresh CheckFree+'s embedding/head replicas every this many iterations (0 = never). */
  replicaEvery: number;
  weighting: AverageWeighting;
  /** Plain checkfree at the first/last stage: re-init from the seed (the paper) or copy the neighbour. */
  edge: EdgePolicy;
}

/** The run a strategy works for. */
export interface RunShape {
  config: ResolvedConfig;
  nStages: number;
}
