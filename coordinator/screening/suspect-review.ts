/**
 * Evidence before conviction (issue 22): what happens to a tab that the relay-norm rules
 * (relay-norms.ts, `upstream` or `jump`) suspect. A statistical jump is a suspicion, not a
 * verdict:
 *
 *   suspicion -> audit -> verdict
 *
 * - The stage has a sibling replica (same weights; not `--dp diloco`, whose replicas differ) and
 *   the pass kept the hop's inputs (hop-evidence.ts): the hop is re-run on the sibling
 *   (hop-audit.ts). `match`: the jump was honest; the flow is excused for this iteration (an
 *   activation audit leaves the sibling untouched, so the iteration goes on; a gradient audit
 *   added a gradient on the sibling, so the iteration is dropped and retried, the flow excused).
 *   `mismatch`: the suspect sent something its weights do not compute: convicted (quarantined),
 *   unless the sibling's re-run is itself further from the flow's baseline than the suspect's
 *   frame (a lying auditor cannot frame an honest tab): then it is treated as unverifiable.
 * - Otherwise the suspicion is `unverifiable`: the iteration is dropped and the suspect put on
 *   probation (probation.ts: stricter thresholds for a while), never expelled. The same flow
 *   suspected again in the retry of that iteration (same data, same weights: an honest tab
 *   reproduces its jump) is accepted, so an honest single replica never stalls the run. A stage
 *   that lacked a sibling asks for one (audit-siblings.ts): placed from the spares before the
 *   retry, it makes the retry's suspicion verifiable (a persistent liar is then convicted).
 */
import type { OutMeta } from '../../shared/protocol/events.js';
import type { Volunteer } from '../tabs/registry.js';
import type { StageTable } from '../placement/stage-table.js';
import type { EventLog } from '../record/events-log.js';
import type { SwarmMetrics } from '../record/metrics.js';
import type { FrameRules, TaskSender } from '../training/task-book.js';
import { HopAudit, type AuditOutcome } from './hop-audit.js';
import type { HopEvidence } from './hop-evidence.js';
import type { Probation } from './probation.js';
import type { Excused, RelayDirection, RelaySuspect } from './relay-norms.js';

/** accept: the iteration goes on; drop: it is abandoned and retried; convict: the suspect is quarantined. */
export type ReviewOutcome = 'accept' | 'drop' | 'convict';

export interface Review {
  outcome: ReviewOutcome;
  /** For the event log and the conviction's reason. */
  why: string;
  audit: AuditOutcome | null;
}

export interface SuspectReviewDeps {
  stages: StageTable;
  evidence: HopEvidence;
  probation: Probation;
  sender: TaskSender;
  frames: FrameRules;
  /** How long an auditor may take per task, now (the scheduler's adaptive task deadline). */
  timeoutMs: () => number;
  events: EventLog;
  metrics: SwarmMetrics;
  /** `--dp diloco`: replicas hold different weights, so no sibling can verify a hop. */
  replicasDiffer: boolean;
  /** The suspect's stage has no sibling: ask for one before the retry (audit-siblings.ts). */
  needSibling?: (stage: number, suspect: Volunteer) => void;
}

function flowKey(iteration: number, sender: Volunteer, stage: number, dir: RelayDirection, hop: number): string {
  return `${iteration}|${sender.id}|${stage}:${dir}:${hop}`;
}

export class SuspectReview {
  private audit: HopAudit | null = null;
  /** Flows an audit cleared, per iteration: not judged again in that iteration (or its retries). */
  private cleared = new Set<string>();
  /** Flows found unverifiable, per iteration: accepted when the retry shows them again. */
  private unverified = new Set<string>();
  /** Of those, the flows accepted (unverified): their norms must not become anyone's baseline. */
  private acceptedUnverified = new Set<string>();

  constructor(private deps: SuspectReviewDeps) {}

  /** The flows of `iteration` that are not judged again. */
  excused(iteration: number): Excused {
    return (sender, stage, dir, hop) => {
      const k = flowKey(iteration, sender, stage, dir, hop);
      return this.cleared.has(k);
    };
  }

  /**
   * The flows of `iteration` accepted without verification, or null when there are none: their
   * norms (and the stage norms of that iteration) stay out of the histories, so a persistent liar
   * on a single replica never becomes its own baseline (and its victim's).
   */
  unverifiedIn(iteration: number): Excused | null {
    const prefix = `${iteration}|`;
    if (![...this.acceptedUnverified].some((k) => k.startsWith(prefix))) return null;
    return (sender, stage, dir, hop) => this.acceptedUnverified.has(flowKey(iteration, sender, stage, dir, hop));
  }

  /** The suspicion `s` (by `rule`) in `iteration`: audits it where it can; resolves with what to do. */
  async review(s: RelaySuspect, rule: 'upstream' | 'jump', iteration: number): Promise<Review> {
    const { stages, evidence, metrics, events } = this.deps;
    metrics.suspicions.inc({ rule });
    const key = flowKey(iteration, s.sender, s.stage, s.dir, s.hop);
    const record = evidence.of(s.sender, s.stage, s.dir, s.hop);
    const siblings = this.deps.replicasDiffer ? [] : stages.replicas(s.stage).filter((v) => v !== s.sender && v.socket.connected);
    if (!record || siblings.length === 0) {
      const why = this.deps.replicasDiffer ? 'replicas hold different weights (diloco)' : siblings.length === 0 ? `stage ${s.stage} has no sibling replica` : 'the hop inputs were not kept';
      if (!this.deps.replicasDiffer && siblings.length === 0) this.deps.needSibling?.(s.stage, s.sender);
      return this.unverifiable(s, key, why, null);
    }
    const auditor = siblings[0]!;
    this.audit = new HopAudit(record, auditor, { sender: this.deps.sender, frames: this.deps.frames, timeoutMs: this.deps.timeoutMs() });
    const audit = await this.audit.run();
    this.audit = null;
    metrics.audits.inc({ verdict: audit.verdict });
    const what = `${s.sender.id}'s ${s.dir === 'grad' ? 'gradients' : 'activations'} of stage ${s.stage} hop ${s.hop} (iteration ${iteration})`;
    const data = { volunteer: s.sender.id, stage: s.stage, auditor: auditor.id, verdict: audit.verdict, diff: audit.diff, iteration };
    if (audit.verdict === 'match') {
      this.cleared.add(key);
      events.add('run', `suspicion of ${what} audited on ${auditor.id}: ${audit.why}; kept`, data);
      // A gradient audit added a backward on the sibling: that iteration cannot be applied.
      return { outcome: s.dir === 'act' ? 'accept' : 'drop', why: audit.why, audit };
    }
    if (audit.verdict === 'mismatch') {
      const off = (x: number) => Math.abs(Math.log(Math.max(x, 1e-30) / s.baseline));
      if (audit.auditorNorm !== null && off(audit.auditorNorm) >= off(s.norm)) {
        return this.unverifiable(s, key, `the auditor ${auditor.id}'s re-run is further from the baseline than the suspect's frame (${audit.why})`, audit);
      }
      events.add('run', `suspicion of ${what} audited on ${auditor.id}: ${audit.why}; convicted`, data);
      return { outcome: 'convict', why: audit.why, audit };
    }
    return this.unverifiable(s, key, audit.why, audit);
  }

  private unverifiable(s: RelaySuspect, key: string, why: string, audit: AuditOutcome | null): Review {
    const { probation, events, metrics } = this.deps;
    if (!audit) metrics.audits.inc({ verdict: 'unverifiable' });
    if (this.unverified.has(key)) {
      // The retry of the iteration showed the same jump: reproduced, still unverifiable; accepted.
      this.cleared.add(key);
      this.acceptedUnverified.add(key);
      return { outcome: 'accept', why: `reproduced in the retry; unverifiable (${why})`, audit };
    }
    this.unverified.add(key);
    const until = probation.put(s.sender, s.stage, s.reason);
    events.add('run', `suspicion of ${s.sender.id} (stage ${s.stage}: ${s.reason}) is unverifiable: ${why}; its iteration is dropped and it is on probation until iteration ${until}`, {
      volunteer: s.sender.id,
      stage: s.stage,
      verdict: 'unverifiable',
      until,
    });
    return { outcome: 'drop', why, audit };
  }

  /** Routes an auditor's answer to the audit in progress; false when it is not one. */
  onOut(v: Volunteer, meta: OutMeta, frame: Uint8Array | null): boolean {
    const a = this.audit;
    if (!a || !a.claims(v, meta)) return false;
    a.onOut(meta, frame);
    return true;
  }

  /** An iteration was applied: what was kept for it and earlier goes. */
  applied(iteration: number): void {
    const drop = (set: Set<string>) => {
      for (const k of set) if (Number(k.slice(0, k.indexOf('|'))) <= iteration) set.delete(k);
    };
    drop(this.cleared);
    drop(this.unverified);
    drop(this.acceptedUnverified);
    this.deps.probation.refresh();
  }

  /** A tab is gone: an audit it was running has no verdict. */
  forget(v: Volunteer): void {
    if (this.audit?.auditor === v) this.audit.cancel(`the auditor ${v.id} went away`);
    this.deps.probation.forget(v);
  }

  /** The barrier gave up (a loss): an audit in progress ends unverifiable. */
  cancel(why: string): void {
    this.audit?.cancel(why);
  }
}
