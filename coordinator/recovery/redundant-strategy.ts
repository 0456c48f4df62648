/**
 * The redundant-computation baseline: after every iteration each stage's full state (weights and
 * Adam moments) is copied to the tabs of its predecessor stage, so a lost stage is restored
 * exactly (same weights, same Adam state, same learning rate) from that copy. It pays for this
 * with a stage state's bytes per stage per iteration.
 *
 * A quarantined tab's copy (taken from the poisoned tab itself) is not used: the stage is rebuilt
 * from its neighbours as plain CheckFree would. A copy that cannot be had falls back to the seed.
 */
import { encodeStageState } from '../../shared/protocol/index.js';
import { planRecovery } from '../../shared/recovery/plan.js';
import { checkStageState } from '../tabs/bundle-check.js';
import type { Volunteer } from '../tabs/registry.js';
import { askStage, ASK_TIMEOUT_MS, okReply, transferTimeoutMs } from '../tabs/ask-stage.js';
import type { StagePuller } from '../tabs/stage-puller.js';
import type { CheckFreeStrategy } from './checkfree-strategy.js';
import type { LostStage, Rebuilt, RecoveryStrategy, RunShape } from './recovery-strategy.js';
import type { Logger } from '../record/log.js';

export interface RedundantDeps {
  run: RunShape;
  puller: StagePuller;
  replicas: (stage: number) => readonly Volunteer[];
  /** Rebuilds a quarantined tab's stage without its own copy. */
  fromNeighbours: CheckFreeStrategy;
  /** lr_scale of a stage re-initialised from the seed when no copy can be had. */
  lrScale: number;
  /** Bytes moved to keep the copies. */
  countCopyBytes: (bytes: number) => void;
  log: Logger;
}

export class RedundantStrategy implements RecoveryStrategy {
  readonly name = 'redundant';

  constructor(private deps: RedundantDeps) {}

  /** The stage whose tabs keep the copy of `stage`. */
  private holderOf(stage: number): number {
    const S = this.deps.run.nStages;
    return (stage - 1 + S) % S;
  }

  async rebuild(lost: LostStage): Promise<Rebuilt> {
    const { stage } = lost;
    if (lost.distrust) return this.deps.fromNeighbours.rebuild(lost, ['the lost tab was quarantined: its redundant copy is not used']);
    const plan = planRecovery(this.name, stage, this.deps.run.nStages);
    const holder = this.holderOf(stage);
    try {
      if (this.deps.run.nStages < 2) throw new Error('a single stage keeps no copy');
      const got = await this.deps.puller.pull(holder, 'replica:stage', (raw) => checkStageState(this.deps.run.config, stage, raw));
      const bundle = encodeStageState(got.value);
      return {
        method: plan.method,
        fallback: false,
        description: plan.description,
        sources: [{ stage: holder, part: 'redundant-copy', bytes: bundle.byteLength }],
        bytesMoved: got.bytes + bundle.byteLength,
        notes: [],
        // An exact restore: same weights, same Adam state, same learning rate.
        handTo: { weights: bundle, reason: 'recovery:redundant', lrScale: 1 },
      };
    } catch (e) {
      return {
        method: 'reinit',
        fallback: true,
        description: plan.description,
        sources: [],
        bytesMoved: 0,
        notes: [`redundant copy unavailable on stage ${holder} (${(e as Error).message}); re-initialised from the seed`],
        handTo: { weights: null, reason: 'recovery:reinit (fallback)', lrScale: this.deps.lrScale },
      };
    }
  }

  /** Every stage's full state is copied to its predecessor's tabs. */
  async afterIteration(): Promise<void> {
    const { run, puller } = this.deps;
    const S = run.nStages;
    if (S < 2) return;
    for (let s = 0; s < S; s++) {
      const holders = this.deps.replicas(this.holderOf(s));
      if (holders.length === 0) continue;
      try {
        const got = await puller.pull(s, 'state', (raw) => checkStageState(run.config, s, raw));
        const b = encodeStageState(got.value);
        for (const h of holders) {
          await askStage(h, 'put_replica', [{ part: 'stage' }, b], okReply, transferTimeoutMs(ASK_TIMEOUT_MS.state, b.byteLength));
          this.deps.countCopyBytes(got.bytes + b.byteLength);
        }
      } catch (e) {
        this.deps.log.warn({ stage: s, err: (e as Error).message }, 'redundant copy refresh failed');
      }
    }
  }

  resumeWithoutTabs(): number | null {
    return null;
  }
}
