/**
 * Evidence before conviction at a `--dp diloco` sync (issue 22): the sync's screen
 * (shared/dp/screen-pseudo-gradients.ts) leaves a replica whose pseudo-gradient chunk is an
 * outlier out of its group's average. That used to quarantine it; but nobody can verify a
 * pseudo-gradient (it is H iterations of the replica's own work on its own weights, which its
 * siblings do not hold), so a finite outlier is `unverifiable`:
 *   - its pseudo-gradient stays out of the average (the others' still apply: diloco-sync.ts);
 *   - it is reset to the group's synced state right after the apply (weights, Adam and outer
 *     state copied from a sibling that applied it): it loses only its own unsynced progress;
 *   - it goes on probation (probation.ts), never expelled.
 * A non-finite norm is garbage, its own evidence: quarantined (a non-finite chunk never gets this
 * far: its frame fails the decode, and diloco-sync.ts reports it as a `nonfinite` offence, which
 * quarantines too). Counted in `swarm_screening_suspicions_total{rule="pseudo"}` and
 * `swarm_screening_audits_total{verdict="unverifiable"}`.
 */
import type { Volunteer } from '../tabs/registry.js';
import type { EventLog } from '../record/events-log.js';
import type { SwarmMetrics } from '../record/metrics.js';
import type { Probation } from './probation.js';

export interface PseudoGradReviewDeps {
  /** The run's probation (the scheduler's; null before it exists). */
  probation: () => Probation | null;
  quarantine: (v: Volunteer, reason: string) => void;
  /** Loads the group's synced state of `stage` into `v` (pulled from a sibling); throws on failure. */
  reset: (v: Volunteer, stage: number, reason: string) => Promise<void>;
  /** `v` could not be reset: it would train on from weights its group does not hold (drop it). */
  unresponsive: (v: Volunteer, why: string) => void;
  events: EventLog;
  metrics: SwarmMetrics;
}

export class PseudoGradReview {
  constructor(private deps: PseudoGradReviewDeps) {}

  /**
   * The screen left `v` (norm `norm` of some chunk) out of `stage`'s sync after `iteration`.
   * Returns whether it must be reset to the group's state once the sync applied (false: quarantined).
   */
  leftOut(v: Volunteer, stage: number, iteration: number, norm: number): boolean {
    const { metrics, events, quarantine } = this.deps;
    const what = `outlier pseudo-gradient of stage ${stage} at the sync after iteration ${iteration}`;
    if (!Number.isFinite(norm)) {
      quarantine(v, `${what} (non-finite norm ${norm})`);
      return false;
    }
    metrics.suspicions.inc({ rule: 'pseudo' });
    metrics.audits.inc({ verdict: 'unverifiable' });
    const probation = this.deps.probation();
    const until = probation?.put(v, stage, `${what} (norm ${norm.toExponential(2)})`);
    events.add(
      'run',
      `${v.id}'s ${what} (chunk norm ${norm.toExponential(2)}) is unverifiable: left out of the average, reset to the group's synced state, on probation${until !== undefined ? ` until iteration ${until}` : ''}`,
      { volunteer: v.id, stage, iteration, norm, verdict: 'unverifiable', rule: 'pseudo', ...(until !== undefined ? { until } : {}) },
    );
    return true;
  }

  /** After the apply: `v` (left out) takes its group's synced state; one that cannot is dropped. */
  async reset(v: Volunteer, stage: number, iteration: number): Promise<void> {
    try {
      await this.deps.reset(v, stage, `reset to the group's synced state after its outlier pseudo-gradient (sync after iteration ${iteration})`);
      this.deps.events.add('run', `${v.id} was reset to stage ${stage}'s synced state after the sync after iteration ${iteration}`, { volunteer: v.id, stage, iteration, reset: true });
    } catch (e) {
      this.deps.unresponsive(v, `could not be reset to stage ${stage}'s synced state: ${(e as Error).message}`);
    }
  }
}
