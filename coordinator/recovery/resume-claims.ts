/**
 * Assignment secrets, so that after a coordinator restart a tab reclaims only a stage it was
 * really given: each assignment carries a fresh random token; the store keeps only its SHA-256
 * (resume-window.ts checks a returning tab's token against it).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Volunteer } from '../tabs/registry.js';
import type { RunStore } from '../record/store.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export class ResumeClaims {
  /** The hash of each tab's current assignment secret. */
  private claims = new Map<Volunteer, string>();

  constructor(private store: Pick<RunStore, 'setClaim' | 'claimMatches' | 'removeClaim'>, private runId: () => string) {}

  /** A fresh secret for `v`'s assignment to `stage` (its previous one stops being valid). */
  issue(v: Volunteer, stage: number): string {
    this.revoke(v);
    const token = randomBytes(24).toString('base64url');
    const hash = sha256(token);
    this.store.setClaim(this.runId(), hash, stage);
    this.claims.set(v, hash);
    return token;
  }

  /** Whether `token` was handed out for `stage` of this run (then it is `v`'s from now on). */
  verify(v: Volunteer, stage: number, token: string): boolean {
    const hash = sha256(token);
    if (!this.store.claimMatches(this.runId(), stage, hash)) return false;
    this.claims.set(v, hash);
    return true;
  }

  /** `v` is gone for good: its secret stops being valid. */
  revoke(v: Volunteer): void {
    const hash = this.claims.get(v);
    if (hash === undefined) return;
    this.claims.delete(v);
    this.store.removeClaim(this.runId(), hash);
  }
}
