/**
 * CPSR (docs/cpsr.md): checkpoints as the checkpoint baseline takes them, but the last few are
 * kept on disk as each stage's history, and a lost stage comes back alone: its last checkpoint
 * (weights and Adam state), its weights moved forward to the current iteration by a predictor
 * that learns from that stage's own checkpoint history (shared/recovery/cpsr). The other stages
 * keep their state: no rollback. `stage-restore` is the same without the prediction (the ablation
 * that shows what prediction adds).
 *
 * Where the predictor trains: at the failure, in the coordinator's process, on the lost stage's
 * history only. Between failures it costs nothing (no overhead on the iterations it protects);
 * the price is the fit's seconds in the recovery (the stage is vacant meanwhile anyway). The
 * prediction falls back to the plain restore, and says why, when the history is too short, the
 * held-out error is above the bound, or the numbers are not finite. A stage whose tab was
 * quarantined, or a run with no usable checkpoint, is rebuilt from its neighbours (CheckFree).
 */
import { stageParamSpecs } from '../../shared/model/params.js';
import { encodeStageState } from '../../shared/protocol/index.js';
import type { IterationRecord } from '../../shared/protocol/operator.js';
import { CheckpointHistory, DEFAULT_HISTORY_LIMITS } from '../../shared/recovery/cpsr/history.js';
import { CpsrPredictor, DEFAULT_PREDICTOR, minCheckpoints, type PredictorConfig } from '../../shared/recovery/cpsr/predictor.js';
import { flattenWeights, flatLength, unflattenWeights } from '../../shared/recovery/cpsr/flat.js';
import { checkStageState } from '../tabs/bundle-check.js';
import type { Logger } from '../record/log.js';
import type { CheckpointStrategy } from './checkpoint-strategy.js';
import type { CheckpointStore } from './checkpoint-store.js';
import type { LostStage, Rebuilt, RecoveryStrategy, RunShape } from './recovery-strategy.js';

/** All stages' histories together stay under this (the slides: the predictor under 200 MB). */
export const CPSR_HISTORY_BYTES = 200 * 1024 * 1024;

/** Checkpoints each stage's history holds: all stages' histories within CPSR_HISTORY_BYTES. */
export function cpsrHistoryCapacity(run: RunShape): number {
  const largest = Math.max(...Array.from({ length: run.nStages }, (_, s) => flatLength(stageParamSpecs(run.config, s)) * 4));
  return Math.max(1, Math.min(DEFAULT_HISTORY_LIMITS.capacity, Math.floor(CPSR_HISTORY_BYTES / run.nStages / largest)));
}

export interface CpsrDeps {
  run: RunShape;
  /** Checkpoints each stage's history holds (cpsrHistoryCapacity); the checkpointing keeps as many on disk. */
  capacity: number;
  /** Takes the checkpoints (interval, uploads, files) exactly as the checkpoint baseline does. */
  checkpointing: CheckpointStrategy;
  checkpoints: CheckpointStore;
  /** The rebuild when nothing of the stage's own can be used (quarantined tab, no checkpoint). */
  fromNeighbours: RecoveryStrategy;
  iteration: () => number;
  predictor?: PredictorConfig;
  log: Logger;
}

export class CpsrStrategy implements RecoveryStrategy {
  constructor(readonly name: 'cpsr' | 'stage-restore', private deps: CpsrDeps) {}

  /** The predictor needs this many checkpoints of a stage before it may predict. */
  get needed(): number {
    return minCheckpoints(this.deps.predictor ?? DEFAULT_PREDICTOR);
  }

  async afterIteration(r: IterationRecord): Promise<void> {
    await this.deps.checkpointing.afterIteration(r);
  }

  resumeWithoutTabs(): number | null {
    return this.deps.checkpointing.resumeWithoutTabs();
  }

  /**
   * The stage's history read back from the kept checkpoints (oldest first), each file checked
   * against its recorded size and hash and decoded against the stage's specs; an unreadable one
   * is left out and named.
   */
  private history(stage: number): { history: CheckpointHistory; skipped: string[] } {
    const { config } = this.deps.run;
    const specs = stageParamSpecs(config, stage);
    const history = new CheckpointHistory({ capacity: this.deps.capacity, maxBytes: CPSR_HISTORY_BYTES });
    const skipped: string[] = [];
    const recorded = this.deps.checkpoints.recorded().slice(0, this.deps.capacity).reverse();
    for (const ck of recorded) {
      try {
        const state = checkStageState(config, stage, this.deps.checkpoints.readStage(ck, stage));
        history.add(ck.iteration, flattenWeights(state.weights, specs));
      } catch (e) {
        skipped.push(`checkpoint ${ck.iteration}: ${(e as Error).message}`);
      }
    }
    return { history, skipped };
  }

  async rebuild(lost: LostStage): Promise<Rebuilt> {
    const { run, checkpoints, log } = this.deps;
    const { stage } = lost;
    const notes: string[] = [];
    if (lost.distrust) {
      const r = await this.deps.fromNeighbours.rebuild(lost);
      return { ...r, notes: [`its tab was quarantined: its own checkpoints are not trusted, so the stage is rebuilt from its neighbours`, ...r.notes] };
    }
    const last = checkpoints.latest();
    let restored: ReturnType<typeof checkStageState> | null = null;
    try {
      if (last) restored = checkStageState(run.config, stage, checkpoints.readStage(last, stage));
    } catch (e) {
      notes.push(`the checkpoint at iteration ${last!.iteration} is unusable (${(e as Error).message})`);
    }
    if (!last || !restored) {
      const r = await this.deps.fromNeighbours.rebuild(lost);
      return { ...r, fallback: true, notes: [...notes, 'no usable checkpoint of the stage yet: rebuilt from its neighbours', ...r.notes] };
    }
    const now = this.deps.iteration();
    let weights = restored.weights;
    let method: Rebuilt['method'] = 'stage-restore';
    let predicted = false;
    if (this.name === 'cpsr') {
      const t0 = Date.now();
      const { history, skipped } = this.history(stage);
      for (const s of skipped) notes.push(`history: ${s}`);
      const predictor = new CpsrPredictor(this.deps.predictor ?? DEFAULT_PREDICTOR);
      try {
        const fit = history.size >= this.needed ? predictor.fit(history) : null;
        const p = history.size > 0 ? predictor.predict(history, now) : null;
        if (p?.predicted) {
          weights = unflattenWeights(p.state, stageParamSpecs(run.config, stage));
          method = 'cpsr';
          predicted = true;
          notes.push(`predicted ${p.horizon} iteration(s) forward from the checkpoint at ${p.from} (held-out error ${p.valRatio.toFixed(3)} of the plain restore's; ${history.size} checkpoints; ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
        } else {
          const why = !fit ? `${history.size} checkpoint(s) of the stage, the predictor needs ${this.needed}` : p && !p.predicted ? p.reason : 'no history';
          notes.push(`no prediction (${why}): the plain restore`);
        }
      } catch (e) {
        notes.push(`the predictor failed (${(e as Error).message}): the plain restore`);
        log.warn({ stage, err: (e as Error).message }, 'cpsr prediction failed');
      } finally {
        predictor.dispose();
      }
    }
    const state = encodeStageState({ weights, optimizer: restored.optimizer });
    const horizon = now - last.iteration;
    return {
      method,
      fallback: this.name === 'cpsr' && !predicted,
      description: `${method}: stage ${stage} restored from its checkpoint at iteration ${last.iteration}${predicted ? `, predicted forward to ${now}` : ` (${horizon} iteration(s) behind)`}; the other stages keep their state`,
      sources: [{ stage, part: `checkpoint@${last.iteration}`, bytes: state.byteLength }],
      bytesMoved: state.byteLength,
      notes: [`restored checkpoint: iteration ${last.iteration}; horizon ${horizon}`, ...notes],
      handTo: { weights: state, reason: `${method} from the checkpoint at iteration ${last.iteration}`, lrScale: 1 },
    };
  }
}
