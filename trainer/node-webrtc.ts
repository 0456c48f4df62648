/**
 * WebRTC for Node volunteers, two stacks behind one factory (issue 23). Browsers use their own
 * RTCPeerConnection; shared/transport takes either through `createPeerConnection`.
 *
 * - `libdatachannel`: node-datachannel's W3C polyfill (libdatachannel + usrsctp; the native
 *   binary ships inside the per-platform npm package @node-datachannel/<platform>).
 * - `libwebrtc`: @roamhq/wrtc (Google's libwebrtc M106 with dcSCTP, Chromium's SCTP; the native
 *   binary ships inside @roamhq/wrtc-<platform>). Loaded only when asked for.
 *
 * Neither downloads or compiles anything at install. docs/p2p.md compares the two.
 */
import { createRequire } from 'node:module';
import { RTCPeerConnection as NodeRTCPeerConnection } from 'node-datachannel/polyfill';
import { withBufferedAmountLow, type PolledChannel } from './wrtc-buffered-low.js';
import { DEFAULT_SCTP_BURST, setSctpBurst, type SctpBurst } from './sctp-burst.js';

export const NODE_WEBRTC_STACKS = ['libdatachannel', 'libwebrtc'] as const;
export type NodeWebrtcStack = (typeof NODE_WEBRTC_STACKS)[number];

/** A stack's name from a flag or argv, checked. */
export function parseNodeStack(name: string): NodeWebrtcStack {
  if (!(NODE_WEBRTC_STACKS as readonly string[]).includes(name)) throw new Error(`WebRTC stack "${name}": expected ${NODE_WEBRTC_STACKS.join(' or ')}`);
  return name as NodeWebrtcStack;
}

/**
 * The stack Node volunteers use unless told otherwise; `NODE_WEBRTC_STACK=libwebrtc` in the
 * environment runs every Node volunteer, test and benchmark on the other one.
 */
export const DEFAULT_NODE_STACK: NodeWebrtcStack = parseNodeStack(process.env.NODE_WEBRTC_STACK || 'libdatachannel');

type Ctor = new (config: RTCConfiguration) => RTCPeerConnection;
let wrtc: Ctor | null = null;

function libwebrtc(): Ctor {
  wrtc ??= (createRequire(import.meta.url)('@roamhq/wrtc') as { RTCPeerConnection: Ctor }).RTCPeerConnection;
  return wrtc;
}

/**
 * `new RTCPeerConnection(config)` for Node on `stack`, typed as the DOM's. On libdatachannel,
 * usrsctp's burst limits are first set to `burst` (sctp-burst.ts; process-wide, so the last
 * setting asked for wins); one that cannot be set is said once on stderr and the connection
 * is made anyway.
 */
export function createNodePeerConnection(config: RTCConfiguration = {}, stack: NodeWebrtcStack = DEFAULT_NODE_STACK, burst: SctpBurst = DEFAULT_SCTP_BURST): RTCPeerConnection {
  if (stack === 'libwebrtc') {
    // libdatachannel's own options (bindAddress, ...) mean nothing to libwebrtc.
    const { iceServers, iceTransportPolicy, bundlePolicy, rtcpMuxPolicy, certificates } = config;
    const pc = new (libwebrtc())({ ...(iceServers ? { iceServers } : {}), ...(iceTransportPolicy ? { iceTransportPolicy } : {}), ...(bundlePolicy ? { bundlePolicy } : {}), ...(rtcpMuxPolicy ? { rtcpMuxPolicy } : {}), ...(certificates ? { certificates } : {}) });
    return withLowEvents(pc);
  }
  applyBurst(burst);
  return new NodeRTCPeerConnection(config as ConstructorParameters<typeof NodeRTCPeerConnection>[0]) as unknown as RTCPeerConnection;
}

let burstWarned = false;
function applyBurst(burst: SctpBurst): void {
  const r = setSctpBurst(burst);
  if (!r.ok && !burstWarned) {
    burstWarned = true;
    console.warn(`[node-webrtc] SCTP burst limits stay usrsctp's (asked: ${burst}): ${r.reason}`);
  }
}

/** Every data channel of `pc`, made or announced, gets a working `bufferedamountlow` (wrtc-buffered-low.ts). */
function withLowEvents(pc: RTCPeerConnection): RTCPeerConnection {
  const create = pc.createDataChannel.bind(pc);
  Object.defineProperty(pc, 'createDataChannel', { configurable: true, value: (label: string, init?: RTCDataChannelInit) => withBufferedAmountLow(create(label, init) as unknown as PolledChannel) });
  // wrtc runs listeners before `ondatachannel`, on the same channel object.
  pc.addEventListener('datachannel', (e) => void withBufferedAmountLow(e.channel as unknown as PolledChannel));
  return pc;
}

/** `createNodePeerConnection` bound to one stack (and burst setting): what PeerLinks and the agent take. */
export function nodePeerConnectionFactory(stack: NodeWebrtcStack = DEFAULT_NODE_STACK, burst: SctpBurst = DEFAULT_SCTP_BURST): (config: RTCConfiguration) => RTCPeerConnection {
  return (config) => createNodePeerConnection(config, stack, burst);
}

/**
 * libdatachannel's own option (ignored by browsers and by libwebrtc): bind ICE to 127.0.0.1, so
 * the only host candidate is loopback (tests and benchmarks; without it every interface's address
 * is offered). libwebrtc ignores loopback interfaces and offers the machine's other addresses.
 */
export const LOOPBACK_ONLY = { bindAddress: '127.0.0.1' } as RTCConfiguration;
