/**
 * Trust for frames that went tab to tab (docs/p2p.md#trust), one pass at a time: the sender
 * reports the digest of what it sent, the receiver the digest and norm of what it got (the norm
 * goes to relay-norms through the pass, exactly as a relayed frame's), or that it refused the
 * frame. When the two digests differ, when the receiver refused, and for a random sample of
 * the rest, the coordinator fetches the frame from the receiver and decides itself:
 *
 * - the receiver cannot produce a frame with the digest it reported: the receiver lied;
 * - the frame fails the relay check: if it is the one the sender vouched for (same digest), the
 *   sender sent garbage (a `nonfinite` frame gets it quarantined, as on the relay); otherwise the
 *   receiver holds garbage nobody sent it;
 * - a valid frame the receiver refused: the receiver lied;
 * - a valid frame whose digest differs from the sender's report: the sender reported a frame it
 *   did not send (DTLS lets only the sender put bytes on that channel).
 * A frame refused as missing (the sender says its peer acknowledged it) cannot be decided: both
 * ends get an offence.
 */
import { FrameError } from '../../shared/protocol/frame-error.js';
import { frameDigest } from '../../shared/transport/frame-digest.js';
import type { GotReport, RefusedReport } from '../../shared/protocol/p2p-messages.js';
import type { Volunteer } from '../tabs/registry.js';
import type { SwarmMetrics } from '../record/metrics.js';
import { checkHopFrame, type ExpectedHopFrame } from '../../shared/protocol/hop-frame-check.js';

/** Which frame: kind, iteration, microbatch, hop (the sender's). */
export type FrameId = Pick<ExpectedHopFrame, 'kind' | 'iteration' | 'microbatch' | 'hop'>;

export interface P2pAuditDeps {
  /** An offence (a `nonfinite` reason quarantines the tab). */
  reject: (v: Volunteer, reason: string, message: string) => void;
  metrics: SwarmMetrics;
  /** The frame `receiver` took for this hop, as it holds it. */
  fetch: (receiver: Volunteer, info: { kind: 'act' | 'grad'; attempt: number; iteration: number; mb: number; hop: number }) => Promise<Uint8Array>;
  /** Share of p2p frames fetched and checked even when both digests agree. */
  sampleRate: number;
  maxBytes: number;
  random?: () => number;
}

function keyOf(want: FrameId): string {
  return `${want.kind}:${want.iteration}:${want.microbatch}:${want.hop}`;
}

export class P2pAudit {
  private sent = new Map<string, { sender: Volunteer; digest: string }>();
  /** Audits in progress (tests wait for them). */
  readonly pending = new Set<Promise<void>>();

  /** `attempt`: the pass's (the frames' keys on the tabs). */
  constructor(private deps: P2pAuditDeps, private attempt = 0) {}

  /** The sender's report: `sender` sent the frame `want` describes with this digest. */
  onSent(sender: Volunteer, want: FrameId, digest: string): void {
    this.sent.set(keyOf(want), { sender, digest });
  }

  /** The receiver's report of the frame it ran on. */
  onGot(receiver: Volunteer, want: ExpectedHopFrame, got: GotReport): void {
    const s = this.sent.get(keyOf(want));
    if (!s) return;
    if (got.digest !== s.digest) return this.audit('mismatch', receiver, s, want, got.digest, false);
    if ((this.deps.random ?? Math.random)() < this.deps.sampleRate) this.audit('sampled', receiver, s, want, got.digest, false);
  }

  /** The receiver did not run its task: the frame was missing or failed its check. */
  onRefused(receiver: Volunteer, want: ExpectedHopFrame, refused: RefusedReport): void {
    const s = this.sent.get(keyOf(want));
    if (!s) return;
    if (!refused.digest) {
      this.deps.metrics.p2pAudits.inc({ result: 'missing' });
      const why = `${want.kind} frame of mb ${want.microbatch} hop ${want.hop}: the sender says it was acknowledged, the receiver that it never came`;
      this.deps.reject(s.sender, 'p2p_missing', why);
      this.deps.reject(receiver, 'p2p_missing', why);
      return;
    }
    this.audit('refused', receiver, s, want, refused.digest, true);
  }

  private audit(why: string, receiver: Volunteer, s: { sender: Volunteer; digest: string }, want: ExpectedHopFrame, reported: string, refused: boolean): void {
    this.deps.metrics.p2pAudits.inc({ result: why });
    const p = this.judge(receiver, s, want, reported, refused).finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  private async judge(receiver: Volunteer, s: { sender: Volunteer; digest: string }, want: ExpectedHopFrame, reported: string, refused: boolean): Promise<void> {
    const { reject, metrics } = this.deps;
    const what = `${want.kind} frame of iteration ${want.iteration} mb ${want.microbatch} hop ${want.hop}`;
    let frame: Uint8Array;
    try {
      frame = await this.deps.fetch(receiver, { kind: want.kind, attempt: this.attempt, iteration: want.iteration, mb: want.microbatch, hop: want.hop });
    } catch (e) {
      metrics.p2pAudits.inc({ result: 'receiver_guilty' });
      return reject(receiver, 'p2p_audit', `could not produce the ${what} it reported: ${(e as Error).message}`);
    }
    const held = await frameDigest(frame);
    if (held !== reported) {
      metrics.p2pAudits.inc({ result: 'receiver_guilty' });
      return reject(receiver, 'p2p_digest', `holds a ${what} other than the one it reported`);
    }
    try {
      checkHopFrame(frame, want, this.deps.maxBytes);
    } catch (e) {
      if (!(e instanceof FrameError)) throw e;
      if (held === s.digest) {
        metrics.p2pAudits.inc({ result: 'sender_guilty' });
        return reject(s.sender, e.reason, `sent its peer a bad ${what}: ${e.message}`);
      }
      metrics.p2pAudits.inc({ result: 'receiver_guilty' });
      return reject(receiver, 'p2p_digest', `holds a bad ${what} its sender never vouched for`);
    }
    if (refused) {
      metrics.p2pAudits.inc({ result: 'receiver_guilty' });
      return reject(receiver, 'p2p_refused', `refused a valid ${what}`);
    }
    if (held !== s.digest) {
      metrics.p2pAudits.inc({ result: 'sender_guilty' });
      return reject(s.sender, 'p2p_digest', `reported a digest for a ${what} other than the one its peer received`);
    }
    metrics.p2pAudits.inc({ result: 'clean' });
  }
}
