/**
 * The peer-to-peer frames of one pass, from their sender's `sent` report to their receiver's
 * answer (docs/p2p.md#the-early-report). A sender reports a frame as soon as it hands it to a link
 * that works, and the receiver's task goes out at once, so the report no longer proves the frame
 * arrived: the receiver's `got` does (then the frame's bytes count as peer to peer), or the
 * sender's link breaks first and it sends the frame to the coordinator (`p2p_fallback`), which
 * relays it to the receiver's waiting task. This book says, for each frame, who sent it to whom,
 * whether it came through the relay after all (its norm was then measured here, not taken from the
 * receiver's report), and whether the receiver already answered (a late fallback is then moot).
 */
import type { Volunteer } from '../tabs/registry.js';

export interface Handoff {
  sender: Volunteer;
  receiver: Volunteer;
  /** Bytes the sender reported. */
  bytes: number;
  /** The sender's link broke and the coordinator relayed the frame. */
  relayed: boolean;
  /** The receiver reported taking (or refusing) the frame. */
  answered: boolean;
}

function keyOf(kind: 'act' | 'grad', mb: number, hop: number): string {
  return `${kind}:${mb}:${hop}`;
}

export class PeerHandoffs {
  private readonly byKey = new Map<string, Handoff>();

  /** `sender` reported the frame of (kind, mb, hop) sent to `receiver`, whose task goes out now. */
  reported(kind: 'act' | 'grad', mb: number, hop: number, sender: Volunteer, receiver: Volunteer, bytes: number): void {
    this.byKey.set(keyOf(kind, mb, hop), { sender, receiver, bytes, relayed: false, answered: false });
  }

  /** The receiver answered for the frame: its handoff (undefined if no sender reported it). */
  answered(kind: 'act' | 'grad', mb: number, hop: number): Handoff | undefined {
    const h = this.byKey.get(keyOf(kind, mb, hop));
    if (h) h.answered = true;
    return h;
  }

  /**
   * `sender`'s link broke after it reported the frame: the handoff to relay (marked relayed), null
   * when the receiver answered already (the frame got through before the link broke), or why the
   * message does not fit (an offence of the sender).
   */
  fellBack(sender: Volunteer, kind: 'act' | 'grad', mb: number, hop: number): { relay: Handoff | null } | { error: string } {
    const h = this.byKey.get(keyOf(kind, mb, hop));
    if (!h) return { error: `no ${kind} frame of mb ${mb} hop ${hop} was reported sent peer to peer` };
    if (h.sender !== sender) return { error: `the ${kind} frame of mb ${mb} hop ${hop} was reported by another tab` };
    if (h.relayed) return { error: `the ${kind} frame of mb ${mb} hop ${hop} fell back twice` };
    if (h.answered) return { relay: null };
    h.relayed = true;
    return { relay: h };
  }
}
