/**
 * Audit siblings (issue 22): a suspicion of a tab that serves its stage alone is unverifiable
 * (no sibling can re-run its hop), so it only puts the tab on probation (probation.ts) and drops
 * the iteration; the retry showing the same jump is accepted. To make the next suspicion
 * verifiable, the stage gets a sibling at once, between iterations, before that retry:
 *
 *   request   suspect-review.ts found no sibling for the suspect's stage;
 *   place     (the scheduler, between iterations) while the suspect is still on probation and
 *             still alone on its stage: a spare joins the stage even past `--max-replicas`, else a
 *             surplus replica of another stage moves there (placement.ts `placeAuditSibling`); it
 *             copies the stage's exact weights and Adam state like any joiner. The retry's
 *             suspicion is then audited on it: a liar's mismatch convicts, an honest jump matches.
 *
 * With no spare and no surplus replica the request stays (a tab that arrives later is placed)
 * until the probation ends; meanwhile the old behaviour holds: probation, never expelled. The
 * sibling stays a replica afterwards (it trains like any other; rebalancing may move it).
 */
import type { Volunteer } from '../tabs/registry.js';
import type { StageTable } from '../placement/stage-table.js';
import type { EventLog } from '../record/events-log.js';
import type { Probation } from './probation.js';

export interface AuditSiblingsDeps {
  stages: StageTable;
  probation: Probation;
  events: EventLog;
  /** Places a sibling on `stage` now (placement.ts `placeAuditSibling`); null when nobody can be. */
  place: (stage: number) => Promise<Volunteer | null>;
}

interface Want {
  suspect: Volunteer;
  /** The "no spare" event was logged (once per request). */
  noted: boolean;
}

export class AuditSiblings {
  /** Per stage: the probationary tab serving it alone that needs a sibling. */
  private wanted = new Map<number, Want>();

  constructor(private deps: AuditSiblingsDeps) {}

  /** `suspect`'s suspicion on `stage` was unverifiable for want of a sibling. */
  request(stage: number, suspect: Volunteer): void {
    const w = this.wanted.get(stage);
    if (w?.suspect === suspect) return;
    this.wanted.set(stage, { suspect, noted: false });
  }

  /** Stages still waiting for an audit sibling. */
  pending(): number[] {
    return [...this.wanted.keys()];
  }

  /** Between iterations: places a sibling on each stage that asked for one and still needs it. */
  async place(): Promise<void> {
    const { stages, probation, events } = this.deps;
    for (const [stage, w] of [...this.wanted]) {
      // A suspect gone (or moved, or off probation) or a stage with a sibling now: nothing to do.
      const alone = stages.replicas(stage).every((v) => v === w.suspect || !v.socket.connected);
      if (!stages.replicas(stage).includes(w.suspect) || !probation.isOn(w.suspect) || !alone) {
        this.wanted.delete(stage);
        continue;
      }
      const v = await this.deps.place(stage);
      if (v) {
        this.wanted.delete(stage);
        events.add('run', `${v.id} joined stage ${stage} as an audit sibling: ${w.suspect.id} serves it on probation, and its next suspicion can be verified`, {
          volunteer: v.id,
          stage,
          suspect: w.suspect.id,
          auditSibling: true,
        });
      } else if (!w.noted) {
        w.noted = true;
        events.add('run', `stage ${stage} has no spare and no surplus replica to audit ${w.suspect.id}: its suspicions stay unverifiable (probation, never expelled) until a tab joins`, {
          stage,
          suspect: w.suspect.id,
        });
      }
    }
  }
}
