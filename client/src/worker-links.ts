/**
 * The worker's end of the page-owned WebRTC links (`--transport p2p|auto`, docs/p2p.md):
 * Chromium has no RTCPeerConnection in a dedicated worker, so the agent's links are a
 * BridgedLinks whose requests go to the page (VolunteerApp's LinkHost) and whose events come back
 * as `{type: 'p2p'}` messages.
 */
import { BridgedLinks, type FrameLinks, type FrameLinksDeps, type LinkEvent } from '../../shared/transport/link-bridge';
import type { WorkerToPage } from './messages';

let current: BridgedLinks | null = null;

/** `createLinks` for the agent: links on the page, driven from this worker. */
export function pageOwnedLinks(deps: FrameLinksDeps): FrameLinks {
  const scope = self as unknown as { postMessage(m: WorkerToPage, transfer?: Transferable[]): void };
  current = new BridgedLinks((msg, transfer) => scope.postMessage({ type: 'p2p', msg }, transfer ?? []), deps);
  return current;
}

/** A `{type: 'p2p'}` message from the page. */
export function deliverLinkEvent(e: LinkEvent): void {
  current?.handle(e);
}
