/**
 * Evidence before conviction for a stage's OWN gradient outlier (issue 22): a stage whose gradient
 * norm is an outlier with no relayed flow into it to blame (screening.ts `judge`, rule null) was
 * quarantined on the spot; now it is a suspicion of the replica with the largest own gradient:
 *
 *   suspicion -> audit -> verdict
 *
 * - Exact mode, the stage has a sibling: the iteration is dropped and retried with the same data,
 *   the suspect left out of that stage's hops (the task book routes them to its siblings) and out
 *   of the gradient sum (it still receives the sum and takes the identical step). Replicas hold
 *   identical weights and the other stages recompute from unchanged weights, so an honest outlier
 *   reproduces: the retry's stage norm is compared with the suspect's iteration's. Where the
 *   coordinator summed the replicas' gradients it uses the norm of that sum (its own computation
 *   from the uploads, barrier.ts), not a tab's answer, so a replica lying in its `grad_norm` answer
 *   cannot make its sibling's audit come out either way; a stage with one replica has only its
 *   own answer (its lie then convicts itself).
 *     `match`    (relative difference <= OWN_AUDIT_TOLERANCE): kept; the retry's outlier is
 *                excused and applied; verified honest, its norm joins the stage's baseline (as an
 *                audited-honest relayed flow joins its sender's), so a legitimate new level stops
 *                costing a retry once the median has moved;
 *     `mismatch` (the retry's norm is smaller: the outlier did not reproduce without the suspect):
 *                quarantined, the reason naming the audit;
 *     the retry's norm is even further out than the suspect's: no verdict on the suspect
 *                (`unverifiable`, probation); the retry is judged afresh (its own largest replica
 *                becomes the suspect), so a lying sibling cannot frame an honest suspect.
 * - Exact mode, no sibling: `unverifiable`: the suspect goes on probation (probation.ts), the
 *   iteration is dropped, and the stage asks for an audit sibling (audit-siblings.ts: a spare, else
 *   a surplus replica of another stage, copying the stage's exact state) before the retry; placed in
 *   time, the retry is audited as above. None obtainable: the retry runs with the suspect, and the
 *   same outlier there is accepted unverified (kept out of the baselines), as suspect-review.ts does.
 * - `--dp diloco`: replicas hold their own weights between syncs, so no sibling's recomputation
 *   can reproduce the suspect's gradient without first overwriting the sibling's own unsynced
 *   progress with the suspect's state (an audit that costs an honest replica its progress, and
 *   whose verdict would rest on a copy the suspect itself supplied): always `unverifiable`
 *   (probation, iteration dropped; the retry reproducing it is accepted unverified). A liar's
 *   accepted gradients stay in its own weights, whose pseudo-gradient the sync screens
 *   (pseudo-grad-review.ts).
 * A non-finite norm is not a suspicion: garbage is its own evidence (the barrier quarantines).
 */
import type { Volunteer } from '../tabs/registry.js';
import type { StageTable } from '../placement/stage-table.js';
import type { EventLog } from '../record/events-log.js';
import type { SwarmMetrics } from '../record/metrics.js';
import type { Probation } from './probation.js';

/**
 * The relative difference between the suspect's stage norm and the retry's under which they match.
 * Measured between honest Node tabs (exact mode, tiny, a stage's gradient inflated 1e4x on every
 * replica, own-gradient-audit.test.ts): the reruns reproduced the norm bit for bit (relative
 * difference 0; the wasm backend is deterministic, the sum is taken in a fixed order); a liar's
 * retry differs by ~1 (1e4x inflated: 0.9998). Other backends round differently (WebGPU vendors
 * drift a few ulps per step, replica-sync.ts), float32 noise is ~1e-6 relative: 1e-2 leaves four
 * orders of magnitude of margin on both sides.
 */
export const OWN_AUDIT_TOLERANCE = 1e-2;

/** What the audit of a stage's own outlier is waiting for, for one iteration. */
type State =
  /** Suspected; the retry leaves the suspect out if a sibling serves the stage then. */
  | 'suspected'
  /** This attempt runs without the suspect: its norm is the evidence. */
  | 'auditing'
  /** Verified honest: the outlier of this iteration is excused in its retries. */
  | 'matched'
  /** No audit possible: the retry showing the same outlier on the same replica is accepted. */
  | 'unverifiable';

interface Pending {
  iteration: number;
  stage: number;
  suspect: Volunteer;
  /** The stage norm of the suspected attempt. */
  norm: number;
  reason: string;
  state: State;
  /** Its unverifiable verdict was counted (and the suspect put on probation) already. */
  counted: boolean;
}

export interface OwnGradientAuditDeps {
  stages: StageTable;
  probation: Probation;
  events: EventLog;
  metrics: SwarmMetrics;
  /** `--dp diloco`: replicas hold different weights; no retry can reproduce a replica's gradient. */
  replicasDiffer: boolean;
  /** The suspect's stage has no sibling: ask for one before the retry (audit-siblings.ts). */
  needSibling?: (stage: number, suspect: Volunteer) => void;
  tolerance?: number;
}

/** What the barrier does with a suspicion: drop the iteration (retry), or accept it (the stage's outlier excused). */
export interface OwnReview {
  outcome: 'drop' | 'accept';
  why: string;
}

/** The verdict the retry's norms give on the suspect (null: no audit ran in this attempt). */
export type OwnVerdict =
  | { verdict: 'match'; stage: number; why: string }
  | { verdict: 'mismatch'; stage: number; suspect: Volunteer; why: string }
  | { verdict: 'unverifiable'; stage: number; why: string };

export class OwnGradientAudit {
  private pending: Pending | null = null;
  /** The iteration whose stage norms stay out of the baselines (an excused or unverified outlier). */
  private unbaselined: number | null = null;

  constructor(private deps: OwnGradientAuditDeps) {}

  private get tolerance(): number {
    return this.deps.tolerance ?? OWN_AUDIT_TOLERANCE;
  }

  private siblings(stage: number, suspect: Volunteer): Volunteer[] {
    return this.deps.stages.replicas(stage).filter((v) => v !== suspect && v.socket.connected);
  }

  private what(p: Pending): string {
    return `${p.suspect.id}'s own gradient of stage ${p.stage} (iteration ${p.iteration}: ${p.reason})`;
  }

  /** An attempt at `iteration` starts: decides whether it runs without the suspect. */
  beginAttempt(iteration: number): void {
    const p = this.pending;
    if (!p) return;
    if (p.iteration !== iteration || !this.deps.stages.replicas(p.stage).includes(p.suspect)) {
      this.pending = null;
      return;
    }
    if (p.state !== 'suspected' && p.state !== 'auditing') return;
    if (!this.deps.replicasDiffer && this.siblings(p.stage, p.suspect).length > 0) {
      p.state = 'auditing';
      return;
    }
    // No sibling was placed in time, or its sibling(s) went away before the retry: no audit now.
    p.state = 'unverifiable';
    if (!p.counted) this.unverifiable(p, `stage ${p.stage} has no sibling replica left to re-run it`);
  }

  /** Whether `v` is left out of this attempt's hops and gradient sum (the suspect under audit). */
  excluded(v: Volunteer): boolean {
    return this.pending?.state === 'auditing' && this.pending.suspect === v;
  }

  /**
   * Before judging an attempt's norms (index = stage): the audit's verdict, where this attempt
   * ran without a suspect. `match`: the stage's outlier is excused; `mismatch`: convict.
   */
  check(iteration: number, norms: readonly (number | null)[]): OwnVerdict | null {
    const p = this.pending;
    if (!p || p.iteration !== iteration || p.state !== 'auditing') return null;
    const n = norms[p.stage];
    if (n === null || n === undefined || !Number.isFinite(n)) return null; // nothing to compare (a non-finite one is judged as such)
    const { metrics, events } = this.deps;
    const diff = Math.abs(n - p.norm) / Math.max(Math.abs(p.norm), 1e-30);
    const data = { volunteer: p.suspect.id, stage: p.stage, iteration, suspectNorm: p.norm, retryNorm: n, diff, rule: 'own' };
    const measured = `the retry without it (its sibling ran stage ${p.stage}'s hops) gave norm ${n.toExponential(3)} against its ${p.norm.toExponential(3)} (relative difference ${diff.toExponential(2)}, tolerance ${this.tolerance})`;
    if (diff <= this.tolerance) {
      metrics.audits.inc({ verdict: 'match' });
      p.state = 'matched';
      events.add('run', `suspicion of ${this.what(p)} audited: ${measured}: reproduced; kept`, { ...data, verdict: 'match' });
      return { verdict: 'match', stage: p.stage, why: measured };
    }
    this.pending = null;
    if (n < p.norm) {
      metrics.audits.inc({ verdict: 'mismatch' });
      events.add('run', `suspicion of ${this.what(p)} audited: ${measured}: not reproduced; convicted`, { ...data, verdict: 'mismatch' });
      return { verdict: 'mismatch', stage: p.stage, suspect: p.suspect, why: `${p.reason}; own-gradient audit: ${measured}, not reproduced` };
    }
    // Further out without the suspect: the evidence points away from it; the retry is judged afresh.
    this.unverifiable(p, `${measured}: further out than the suspect's, the retry is judged on its own`);
    return { verdict: 'unverifiable', stage: p.stage, why: measured };
  }

  /**
   * A stage's own outlier of `iteration` blamed on `suspect` (finite `norm`): a suspicion. Returns
   * whether the iteration is dropped (and retried) or accepted with the outlier excused.
   */
  suspect(iteration: number, stage: number, suspect: Volunteer, norm: number, reason: string): OwnReview {
    const p = this.pending;
    if (p && p.iteration === iteration && p.stage === stage) {
      if (p.state === 'matched') {
        return { outcome: 'accept', why: 'verified honest in an earlier attempt of this iteration' };
      }
      if (p.state === 'unverifiable' && p.suspect === suspect) {
        // The retry (same data, same weights) showed it again: reproduced, still unverifiable.
        this.unbaselined = iteration;
        this.deps.events.add('run', `${this.what(p)}: reproduced in the retry, still unverifiable; accepted (kept out of the baselines)`, { volunteer: suspect.id, stage, iteration, rule: 'own', verdict: 'accepted-unverified' });
        return { outcome: 'accept', why: 'reproduced in the retry; unverifiable' };
      }
    }
    const { metrics, events } = this.deps;
    metrics.suspicions.inc({ rule: 'own' });
    const next: Pending = { iteration, stage, suspect, norm, reason, state: 'suspected', counted: false };
    this.pending = next;
    if (this.deps.replicasDiffer) {
      next.state = 'unverifiable';
      const why = 'diloco replicas hold their own weights between syncs: no sibling can reproduce its gradient';
      this.unverifiable(next, why);
      return { outcome: 'drop', why: `unverifiable (${why})` };
    }
    if (this.siblings(stage, suspect).length > 0) {
      events.add('run', `suspicion of ${this.what(next)}: the iteration is dropped and retried with stage ${stage}'s hops on its sibling(s), without it`, { volunteer: suspect.id, stage, iteration, rule: 'own' });
      return { outcome: 'drop', why: `suspicion of ${suspect.id}'s own gradient, to be audited by the retry on its sibling(s)` };
    }
    const why = `stage ${stage} has no sibling replica`;
    this.unverifiable(next, why);
    this.deps.needSibling?.(stage, suspect);
    return { outcome: 'drop', why: `unverifiable (${why}); an audit sibling is asked for` };
  }

  private unverifiable(p: Pending, why: string): void {
    const { metrics, events, probation } = this.deps;
    p.counted = true;
    metrics.audits.inc({ verdict: 'unverifiable' });
    const until = probation.put(p.suspect, p.stage, p.reason);
    events.add('run', `suspicion of ${this.what(p)} is unverifiable: ${why}; its iteration is dropped and it is on probation until iteration ${until}`, {
      volunteer: p.suspect.id,
      stage: p.stage,
      verdict: 'unverifiable',
      rule: 'own',
      until,
    });
  }

  /** Whether the stage norms of `iteration` stay out of the outlier baselines (an excused or unverified outlier). */
  keepOutOfBaselines(iteration: number): boolean {
    return this.unbaselined === iteration;
  }

  /** An iteration was applied: its audit is over. */
  applied(iteration: number): void {
    if (this.pending && this.pending.iteration <= iteration) this.pending = null;
    if (this.unbaselined !== null && this.unbaselined <= iteration) this.unbaselined = null;
  }

  /** A tab is gone: a suspicion of it ends (its retry runs without it anyway). */
  forget(v: Volunteer): void {
    if (this.pending?.suspect === v) this.pending = null;
  }
}
