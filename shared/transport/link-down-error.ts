/** Why a PeerLink went down, and the error its unacknowledged sends reject with. */

/** Append only: these are metric labels. */
export const LINK_FAILURES = [
  'open-timeout', // not open within openTimeoutMs (signal lost, no candidate pair, TURN unreachable)
  'ice-failed', // the peer connection reported failed
  'silent', // open, but nothing heard from the peer for silenceTimeoutMs
  'peer-closed', // the peer closed the channel or connection, or said bye
  'protocol', // the peer sent a message that breaks the link protocol
  'signal', // a signal could not be applied (bad SDP, offer/answer out of turn)
  'closed', // closed locally
] as const;
export type LinkFailure = (typeof LINK_FAILURES)[number];

/**
 * A send that did not reach the peer because the link went down. `frames` were not acknowledged:
 * the caller sends them another way (the coordinator's relay). A frame may have arrived even so
 * (its acknowledgement was lost with the link): receivers drop duplicates by (iteration, hop).
 */
export class LinkDownError extends Error {
  readonly peer: string;
  readonly failure: LinkFailure;
  readonly frames: Uint8Array[];

  constructor(peer: string, failure: LinkFailure, detail: string, frames: Uint8Array[]) {
    super(`link to ${peer} down (${failure}): ${detail}`);
    this.name = 'LinkDownError';
    this.peer = peer;
    this.failure = failure;
    this.frames = frames;
  }
}
