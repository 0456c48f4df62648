/**
 * The strategies of the churn experiment and study that checkpoint every stage every K iterations
 * (and so pay a checkpoint's upload every K iterations and a checkpoint download per lost stage):
 *
 *   checkpoint     on a loss, the whole swarm rolls back to the last checkpoint and recomputes
 *   stage-restore  only the lost stage comes back from its last checkpoint (weights + Adam), no rollback
 *   cpsr           the same, its weights moved forward by the stage's predictor (experiments/local-cpsr.ts)
 */
import type { RecoveryStrategy } from '../shared/run-settings.js';

export const CHECKPOINTED_STRATEGIES: readonly RecoveryStrategy[] = ['checkpoint', 'stage-restore', 'cpsr'];

export function takesCheckpoints(s: RecoveryStrategy): boolean {
  return CHECKPOINTED_STRATEGIES.includes(s);
}

/** Only the lost stage is restored from its checkpoint (no rollback): stage-restore and cpsr. */
export function restoresOnlyLostStage(s: RecoveryStrategy): s is 'stage-restore' | 'cpsr' {
  return s === 'stage-restore' || s === 'cpsr';
}
