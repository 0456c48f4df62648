/**
 * The checkpoint baseline: every few iterations (fixed, or Young/Daly from the measured cost and
 * the assumed failure rate) every stage uploads its weights and Adam state and the coordinator
 * writes them to disk (checkpoint-store.ts, recorded in SQLite). A lost stage rolls the whole
 * swarm back to the last checkpoint: the iterations since are lost, the optimizer state is exact.
 */
import { youngDalyIntervalSeconds } from '../../shared/recovery/failure-model.js';
import { encodeStageState } from '../../shared/protocol/index.js';
import { checkStageState } from '../tabs/bundle-check.js';
import type { Volunteer } from '../tabs/registry.js';
import type { PendingStage } from '../placement/stage-table.js';
import type { StagePuller } from '../tabs/stage-puller.js';
import type { IterationRecord } from '../../shared/protocol/operator.js';
import type { CheckpointStore } from './checkpoint-store.js';
import type { CheckpointRecord } from '../record/store.js';
import type { LostStage, Rebuilt, RecoveryStrategy, RunShape, StrategySettings } from './recovery-strategy.js';
import type { Logger } from '../record/log.js';
import type { RunProgress } from '../training/run-progress.js';

export interface CheckpointDeps {
  run: RunShape;
  settings: Pick<StrategySettings, 'checkpointEvery' | 'expectedFailureRate'>;
  puller: StagePuller;
  checkpoints: CheckpointStore;
  replicas: (stage: number) => readonly Volunteer[];
  /** A stage nobody serves gets this state when a tab takes it. */
  setPending: (stage: number, p: PendingStage) => void;
  /** Loads `state` (null: the seed) into a tab serving `stage` now. */
  reload: (v: Volunteer, stage: number, state: Uint8Array | null, reason: string) => Promise<void>;
  /** Where the run is; a rollback moves it back. */
  progress: RunProgress;
  countCheckpointBytes: (bytes: number) => void;
  /** An event for operators (a failed checkpoint). */
  note: (message: string, data: Record<string, unknown>) => void;
  log: Logger;
  /** Checkpoints kept on disk (1: only the last one; CPSR keeps each stage's short history). */
  keep?: number;
  /** `--checkpoint-every cpsr`: CPSR's planned interval (null or absent: Young/Daly, as auto). */
  plannedInterval?: () => number | null;
}

export class CheckpointStrategy implements RecoveryStrategy {
  readonly name = 'checkpoint';
  /** Measured cost of the last checkpoint (seconds), for the auto interval. */
  private checkpointSeconds: number | null = null;

  constructor(private deps: CheckpointDeps) {}

  /** The run's last checkpoint (recorded in SQLite, so it survives a restart). */
  get last(): CheckpointRecord | null {
    return this.deps.checkpoints.latest();
  }

  /** The whole swarm rolls back to the last checkpoint (or to the seed when there is none usable). */
  async rebuild(lost: LostStage): Promise<Rebuilt> {
    const { deps } = this;
    let ck = this.last;
    let states: Uint8Array[] = [];
    const notes: string[] = [];
    try {
      if (ck) states = deps.checkpoints.read(ck);
    } catch (e) {
      notes.push(`the checkpoint at iteration ${ck!.iteration} is unusable (${(e as Error).message})`);
      ck = null;
    }
    const target = ck?.iteration ?? 0;
    const lostIterations = deps.progress.iteration - target;
    let bytesMoved = 0;
    const reason = `rollback to iteration ${target}`;
    for (let s = 0; s < deps.run.nStages; s++) {
      const state = ck ? states[s]! : null;
      if (state) bytesMoved += state.byteLength;
      const live = deps.replicas(s);
      if (live.length === 0) deps.setPending(s, { weights: state, reason, lrScale: 1 });
      for (const v of live) {
        await deps.reload(v, s, state, reason).catch((e: Error) => deps.log.warn({ stage: s, volunteer: v.id, err: e.message }, 'rollback of a live stage failed'));
      }
    }
    deps.progress.moveTo(target);
    notes.push(`rolled back ${lostIterations} iteration(s) to ${ck ? `the checkpoint at iteration ${target}` : 'the start: every stage re-initialised from the seed (no usable checkpoint)'}`);
    return {
      method: 'checkpoint',
      fallback: !ck,
      description: `checkpoint: whole swarm rolls back to iteration ${target}`,
      sources: ck ? [{ stage: -1, part: `checkpoint@${target}`, bytes: bytesMoved }] : [],
      bytesMoved,
      notes,
      handTo: null,
    };
  }

  async afterIteration(r: IterationRecord): Promise<void> {
    const last = this.last;
    if (!last || r.iteration - last.iteration >= this.interval()) await this.checkpoint(r.iteration);
  }

  /** Every stage restarts from the run's last checkpoint, when it has one for every stage. */
  resumeWithoutTabs(): number | null {
    const { deps } = this;
    const ck = this.last;
    if (!ck || ck.files.length !== deps.run.nStages) return null;
    let states: Uint8Array[];
    try {
      states = deps.checkpoints.read(ck);
    } catch (e) {
      deps.log.error({ err: (e as Error).message }, 'checkpoint unusable for the resume');
      return null;
    }
    for (const [s, state] of states.entries()) deps.setPending(s, { weights: state, reason: `resume from the checkpoint at iteration ${ck.iteration}`, lrScale: 1 });
    deps.progress.moveTo(ck.iteration);
    return ck.iteration;
  }

  /** Iterations between checkpoints now: fixed, or Young/Daly from the measured cost. */
  interval(): number {
    const { checkpointEvery, expectedFailureRate } = this.deps.settings;
    if (checkpointEvery === 'cpsr') {
      const planned = this.deps.plannedInterval?.();
      if (planned) return planned;
    } else if (checkpointEvery !== 'auto') return Math.max(1, Math.round(checkpointEvery));
    const hist = this.deps.progress.recentSeconds(20);
    const iterSeconds = hist.length ? hist.reduce((a, h) => a + h, 0) / hist.length : 1;
    const lambda = (expectedFailureRate * this.deps.run.nStages) / 3600;
    const c = this.checkpointSeconds ?? iterSeconds; // before the first measurement: one iteration's worth
    const seconds = youngDalyIntervalSeconds(c, lambda);
    return Math.max(1, Math.min(10_000, Math.round(seconds / Math.max(iterSeconds, 1e-3))));
  }

  /** Every stage uploads weights + Adam state (checked); the coordinator writes them to disk. */
  async checkpoint(iteration: number): Promise<void> {
    const { deps } = this;
    const t0 = Date.now();
    let written;
    try {
      const states: Uint8Array[] = [];
      for (let s = 0; s < deps.run.nStages; s++) {
        // Checked and re-encoded before it is stored: a tab cannot plant a poisoned state for the next rollback.
        const got = await deps.puller.pull(s, 'state', (raw) => encodeStageState(checkStageState(deps.run.config, s, raw)));
        states.push(got.value);
      }
      written = deps.checkpoints.write(iteration, states, t0, deps.keep ?? 1);
    } catch (e) {
      // A lost tab or a full disk: training goes on, the previous checkpoint stays the one to roll back to.
      const prev = this.last?.iteration;
      deps.note(`checkpoint at iteration ${iteration} failed (${(e as Error).message}); ${prev === undefined ? 'no checkpoint yet' : `the one at iteration ${prev} stays`}`, { iteration, error: (e as Error).message });
      return;
    }
    const { bytes, seconds } = written;
    this.checkpointSeconds = seconds;
    deps.countCheckpointBytes(bytes);
    deps.log.info({ iteration, bytes, seconds, next: this.interval() }, 'checkpoint written');
  }
}
