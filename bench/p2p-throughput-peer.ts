/**
 * One end of bench/p2p-throughput.ts, a process of its own (started in a network namespace with
 * `ip netns exec`): a PeerLinks with one peer (`stripes` peer connections), signalled through its parent (stdout lines
 * `{"to","signal"}` out, stdin lines `{"from","signal"}` in). The sender opens the link, then sends
 * `bulk` frames all at once (throughput) and `paced` frames one at a time with `gapMs` of idle
 * between an acknowledgement and the next send (what a pipeline hop does), and prints one
 * `{"result": ...}` line. The receiver only receives. Not for use on its own.
 *
 *   node --import tsx bench/p2p-throughput-peer.ts '<json PeerConfig>'
 */
import { createInterface } from 'node:readline';
import { PeerLinks } from '../shared/transport/peer-links.js';
import type { PeerLinkOptions } from '../shared/transport/peer-link.js';
import { nodePeerConnectionFactory, type NodeWebrtcStack } from '../trainer/node-webrtc.js';
import type { SctpBurst } from '../trainer/sctp-burst.js';

export interface PeerConfig {
  self: string;
  peer: string;
  role: 'send' | 'recv';
  rtc: RTCConfiguration;
  link: Partial<PeerLinkOptions>;
  /** libdatachannel's SCTP settings (node-datachannel `setSctpSettings`), before any link. */
  sctp?: Record<string, number>;
  /** usrsctp's burst limits (trainer/sctp-burst.ts; libdatachannel only; default its default). */
  sctpBurst?: SctpBurst;
  /** The Node WebRTC stack (trainer/node-webrtc.ts; default its default). */
  stack?: NodeWebrtcStack;
  /** Peer connections per pair (PeerLinks `stripes`; default 1). */
  stripes?: number;
  frameBytes: number;
  bulk: number;
  paced: number;
  gapMs: number;
}

export interface PeerResult {
  openMs: number;
  bulkMs: number;
  bulkBytes: number;
  /** Per paced frame: send to acknowledgement, ms. */
  pacedMs: number[];
  rttMs: number | null;
}

const cfg = JSON.parse(process.argv[2] ?? '') as PeerConfig;
if (cfg.sctp && cfg.stack === 'libwebrtc') throw new Error('sctp settings are libdatachannel\'s: not with --stack libwebrtc');
if (cfg.sctp) {
  const { setSctpSettings } = await import('node-datachannel');
  setSctpSettings(cfg.sctp);
}
const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');
let received = 0;
const links = new PeerLinks({
  self: cfg.self,
  signal: (to, signal) => out({ to, signal }),
  createPeerConnection: nodePeerConnectionFactory(cfg.stack, cfg.sctpBurst),
  rtcConfig: cfg.rtc,
  stripes: cfg.stripes ?? 1,
  linkOptions: { openTimeoutMs: 15_000, silenceTimeoutMs: 15_000, ...cfg.link },
  events: {
    onFrame: () => void received++,
    onLinkDown: (peer, failure, detail) => out({ down: { peer, failure, detail } }),
  },
});
createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line) as { from: string; signal: unknown };
  void links.handleSignal(m.from, m.signal);
});
// The parent closes stdin when it is done with us (or is gone).
process.stdin.on('end', () => process.exit(0));

if (cfg.role === 'send') {
  const frame = new Uint8Array(cfg.frameBytes);
  for (let i = 0; i < frame.length; i += 4096) frame[i] = i & 255;
  const t0 = performance.now();
  await links.send(cfg.peer, new Uint8Array(1024)); // opens the link
  const openMs = performance.now() - t0;
  const b0 = performance.now();
  await Promise.all(Array.from({ length: cfg.bulk }, () => links.send(cfg.peer, frame)));
  const bulkMs = performance.now() - b0;
  const pacedMs: number[] = [];
  for (let i = 0; i < cfg.paced; i++) {
    await new Promise((r) => setTimeout(r, cfg.gapMs));
    pacedMs.push((await links.send(cfg.peer, frame)).ms);
  }
  const rttMs = links.stats().find((s) => s.peer === cfg.peer)?.rttMs ?? null;
  const result: PeerResult = { openMs, bulkMs, bulkBytes: cfg.bulk * cfg.frameBytes, pacedMs, rttMs };
  out({ result });
}
