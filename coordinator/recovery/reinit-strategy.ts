/**
 * `--recovery none`: a lost stage starts again from the seed's initial weights, with a fresh Adam
 * at the run's learning rate (no lr_scale: that belongs to CheckFree's recipe; the experiments'
 * `none` does the same). The baseline that shows what recovery is worth.
 */
import { planRecovery } from '../../shared/recovery/plan.js';
import type { LostStage, Rebuilt, RecoveryStrategy, RunShape } from './recovery-strategy.js';

export class ReinitStrategy implements RecoveryStrategy {
  readonly name = 'none';

  constructor(private run: RunShape) {}

  async rebuild(lost: LostStage): Promise<Rebuilt> {
    const plan = planRecovery(this.name, lost.stage, this.run.nStages);
    return {
      method: plan.method,
      fallback: plan.fallback,
      description: plan.description,
      sources: [],
      bytesMoved: 0,
      notes: [],
      handTo: { weights: null, reason: `recovery:${plan.method}`, lrScale: 1 },
    };
  }

  async afterIteration(): Promise<void> {}

  resumeWithoutTabs(): number | null {
    return null;
  }
}
