/**
 * WebRTC for Node volunteers: node-datachannel's W3C polyfill (libdatachannel; the native binary
 * ships inside the per-platform npm package @node-datachannel/<platform>, nothing is downloaded
 * or compiled at install). Browsers use their own RTCPeerConnection; shared/transport takes
 * either through `createPeerConnection`.
 */
import { RTCPeerConnection as NodeRTCPeerConnection } from 'node-datachannel/polyfill';

/** `new RTCPeerConnection(config)` for Node, typed as the DOM's. */
export function createNodePeerConnection(config: RTCConfiguration = {}): RTCPeerConnection {
  return new NodeRTCPeerConnection(config as ConstructorParameters<typeof NodeRTCPeerConnection>[0]) as unknown as RTCPeerConnection;
}

/**
 * libdatachannel's own option (ignored by browsers): bind ICE to 127.0.0.1, so the only host
 * candidate is loopback (tests and benchmarks; without it every interface's address is offered).
 */
export const LOOPBACK_ONLY = { bindAddress: '127.0.0.1' } as RTCConfiguration;
