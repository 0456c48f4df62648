/**
 * Two PeerLinks managers in one process whose signals go through a stand-in for the coordinator:
 * each signal is serialised to JSON and parsed back (as socket.io would carry it), delivered on a
 * later turn of the event loop, and can be dropped or inspected. Node WebRTC on `stack`
 * (trainer/node-webrtc.ts): libdatachannel bound to 127.0.0.1, its only host candidate loopback;
 * libwebrtc offers this machine's non-loopback addresses. For the transport's tests and
 * bench/p2p.ts.
 */
import type { Signal } from '../shared/protocol/signal.js';
import { wireFrameBytes } from '../shared/protocol/wire-encoding.js';
import { PeerLinks, type PeerLinksEvents } from '../shared/transport/peer-links.js';
import type { PeerLinkOptions } from '../shared/transport/peer-link.js';
import type { LinkFailure } from '../shared/transport/link-down-error.js';
import { LOOPBACK_ONLY, nodePeerConnectionFactory, type NodeWebrtcStack } from '../trainer/node-webrtc.js';
import type { SctpBurst } from '../trainer/sctp-burst.js';

export interface PeerEnd {
  id: string;
  links: PeerLinks;
  /** Frames received, in arrival order, with their sender. */
  frames: { from: string; frame: Uint8Array }[];
  downs: { peer: string; failure: LinkFailure; detail: string; at: number }[];
  rejected: { from: string; message: string }[];
  ups: string[];
}

export interface PeerPairOptions {
  rtcConfig?: RTCConfiguration;
  linkOptions?: Partial<PeerLinkOptions>;
  /** Return false to drop a signal on its way (a blocked signalling path). */
  deliver?: (from: string, to: string, signal: Signal) => boolean;
  /** Called with each received frame instead of storing it (benchmarks). */
  onFrame?: (to: string, from: string, frame: Uint8Array) => void;
  /** The Node WebRTC stack both ends use (default: trainer/node-webrtc.ts's). */
  stack?: NodeWebrtcStack;
  /** usrsctp's burst limits on libdatachannel (trainer/sctp-burst.ts; process-wide; default its default). */
  sctpBurst?: SctpBurst;
}

export function peerPair(a: string, b: string, opts: PeerPairOptions = {}): [PeerEnd, PeerEnd] {
  const ends = new Map<string, PeerEnd>();
  const make = (id: string): PeerEnd => {
    const end: PeerEnd = { id, links: null as unknown as PeerLinks, frames: [], downs: [], rejected: [], ups: [] };
    const events: PeerLinksEvents = {
      onFrame: (from, frame) => (opts.onFrame ? opts.onFrame(id, from, frame) : end.frames.push({ from, frame })),
      onLinkUp: (peer) => end.ups.push(peer),
      onLinkDown: (peer, failure, detail) => end.downs.push({ peer, failure, detail, at: performance.now() }),
      onSignalRejected: (from, message) => end.rejected.push({ from, message }),
    };
    end.links = new PeerLinks({
      self: id,
      signal: (to, signal) => {
        if (opts.deliver && !opts.deliver(id, to, signal)) return;
        const wire = JSON.stringify(signal);
        setImmediate(() => ends.get(to)?.links.handleSignal(id, JSON.parse(wire)));
      },
      createPeerConnection: nodePeerConnectionFactory(opts.stack, opts.sctpBurst),
      rtcConfig: { ...LOOPBACK_ONLY, ...opts.rtcConfig },
      linkOptions: opts.linkOptions,
      events,
    });
    ends.set(id, end);
    return end;
  };
  return [make(a), make(b)];
}

/** `n` bytes of a pattern that differs per frame and per byte (a shifted or swapped chunk shows). */
export function patternFrame(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Bytes of an int8 [batch, seq, d] frame, the run's default wire encoding (for frame checks). */
export function maxWireFrameBytes(shape: readonly number[]): number {
  return wireFrameBytes(shape, 'int8');
}
