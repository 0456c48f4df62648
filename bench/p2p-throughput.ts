/**
 * Throughput of one WebRTC peer link through emulated home links (issue 23): what a p2p hop can
 * carry, isolated from the swarm. Two processes (bench/p2p-throughput-peer.ts), each in a network
 * namespace of its own behind `tbf` links (testing/netns-links.ts), open one PeerLink (the swarm's
 * transport: chunks, backpressure, acks) and the sender pushes `--bulk` frames at once, then
 * `--paced` frames one at a time with `--gap` ms idle before each (a pipeline hop's pattern).
 * Printed per configuration: bulk Mbit/s, the paced frames' median send-to-ack time beside the
 * link model's, the data channel's ping RTT, and the packets lost on the way (tbf queue drops,
 * UDP receive-buffer overflows in the namespaces and in the root namespace, where coturn and the
 * delay proxy run). Every factor takes a comma list (`--sctp` a `|` list of JSON objects or
 * `default`); every combination runs, on one emulated network, one after the other.
 *
 * `--stripes` gives the pair K peer connections (shared/transport/striped-link.ts, the swarm's
 * `--p2p-stripes`): each frame is cut into up to K parts sent at once, one per connection; the
 * slow-start model column then starts each frame from K x 10 MTUs in flight.
 *
 * `--stack` picks the Node WebRTC stack of both ends (trainer/node-webrtc.ts): libdatachannel
 * (usrsctp) or libwebrtc (@roamhq/wrtc, Chromium's dcSCTP), one row each.
 *
 * Paths: `turn` (as bench:p2p-swarm --links: relayed candidates only, through a real coturn on the
 * bridge behind testing/udp-delay-proxy.ts, `--ms` one-way each side) and `direct` (host
 * candidates across the bridge: tbf only, no added latency, since this kernel has no netem) and
 * `proxied` (host candidates, one end's through delay proxies of 2 x `--ms` each way: the turn
 * path's round trip without coturn; bench/candidate-proxies.ts).
 *
 *   sudo npx tsx bench/p2p-throughput.ts                               (50 Mbit/s, 20 ms, turn)
 *   sudo npx tsx bench/p2p-throughput.ts --path direct,turn --ms 0,20
 *   sudo npx tsx bench/p2p-throughput.ts --sctp 'default|{"recvBufferSize":4194304,"sendBufferSize":4194304}'
 *   sudo npx tsx bench/p2p-throughput.ts --chunk 16,64,256 --high 1024,4096
 *   sudo npx tsx bench/p2p-throughput.ts --stack libdatachannel,libwebrtc --bulk 8 --paced 4
 *   sudo npx tsx bench/p2p-throughput.ts --ms 20 --proxy-buffer 4096 --frame 256,1024 --paced 5 --bulk 4 --stripes 1,2,4,8
 *
 * Needs root, iproute2 and coturn (scripts/ensure-packages.sh). Removes everything it set up.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { createNetnsLinks } from '../testing/netns-links.js';
import { TURN_NICENESS, startTurnServer } from '../testing/turn-server.js';
import { startUdpDelayProxy, type UdpDelayProxy } from '../testing/udp-delay-proxy.js';
import { sumDrops, udpDropsByPort, udpRcvbufErrors } from '../testing/udp-drops.js';
import { turnCredentials } from '../shared/transport/turn-credentials.js';
import { flags, fmt, list, machine, median, table } from './util.js';
import { slowStartWireMs } from './hop-breakdown.js';
import { CandidateProxies } from './candidate-proxies.js';
import type { PeerConfig, PeerResult } from './p2p-throughput-peer.js';
import { isStripeCount, MAX_STRIPES } from '../shared/protocol/signal.js';
import { DEFAULT_NODE_STACK, NODE_WEBRTC_STACKS, parseNodeStack, type NodeWebrtcStack } from '../trainer/node-webrtc.js';
import { DEFAULT_SCTP_BURST, parseSctpBurst, type SctpBurst } from '../trainer/sctp-burst.js';

const HELP = `bench/p2p-throughput.ts: one WebRTC peer link's throughput through emulated links (root)
  --mbps N        tbf rate of each namespace's uplink and downlink, Mbit/s (default 50)
  --ms LIST       one-way latency added by the UDP delay proxy, each side, ms (turn and proxied paths; default 20)
  --path LIST     turn | direct | proxied (default turn; proxied: host candidates through a delay proxy, 2 x --ms each way, no coturn needed)
  --frame LIST    frame size, KiB (default 256)
  --bulk N        frames sent at once (default 32: 8 MiB of 256 KiB frames)
  --paced N       frames sent one at a time after --gap ms idle (default 8)
  --gap MS        idle before each paced frame (default 150)
  --chunk LIST    data-channel message size, KiB (PeerLink chunkBytes; default 64)
  --high LIST     PeerLink highWaterBytes, KiB (default 4096)
  --low LIST      PeerLink lowWaterBytes (bufferedAmountLowThreshold), KiB (default 1024)
  --stripes LIST  peer connections per pair, 1 .. 8 (the swarm's --p2p-stripes; default 1)
  --stack LIST    Node WebRTC stack of both ends: ${NODE_WEBRTC_STACKS.join(' | ')} (default ${DEFAULT_NODE_STACK})
  --sctp-burst LIST  usrsctp's burst limits (trainer/sctp-burst.ts): lifted | limited (default ${DEFAULT_SCTP_BURST}; libdatachannel only)
  --sctp LIST     '|'-separated libdatachannel SCTP settings as JSON, or 'default' (default: default; libdatachannel only)
  --proxy-buffer LIST  the UDP delay proxy's socket buffers, KiB (0: the kernel default; default 0)
  --queue KIB     tbf queue limit (default 1000 kB as netns-links)
  --help`;

const f = flags(process.argv.slice(2), { mbps: 'string', ms: 'string', path: 'string', frame: 'string', bulk: 'string', paced: 'string', gap: 'string', chunk: 'string', high: 'string', low: 'string', sctp: 'string', 'sctp-burst': 'string', stack: 'string', queue: 'string', 'proxy-buffer': 'string', stripes: 'string', help: 'boolean' });
if (f.help) {
  console.log(HELP);
  process.exit(0);
}
const nums = (v: string | boolean | undefined, d: string) => String(v ?? d).split(',').map(Number);
const mbps = Number(f.mbps ?? 50);
const frames = nums(f.frame, '256').map((k) => k * 1024);
const bulk = Number(f.bulk ?? 32);
const paced = Number(f.paced ?? 8);
const gapMs = Number(f.gap ?? 150);
const latencies = nums(f.ms, '20');
const paths = String(f.path ?? 'turn').split(',') as Path[];
const chunks = nums(f.chunk, '64');
const highs = nums(f.high, '4096');
const lows = nums(f.low, '1024');
const proxyBufs = nums(f['proxy-buffer'], '0');
const stripeCounts = nums(f.stripes, '1');
for (const k of stripeCounts) if (!isStripeCount(k)) throw new Error(`--stripes ${k}: 1 .. ${MAX_STRIPES}`);
const stacks = list(f.stack, [DEFAULT_NODE_STACK]).map(parseNodeStack);
const bursts = list(f['sctp-burst'], [DEFAULT_SCTP_BURST]).map(parseSctpBurst);
const sctps = String(f.sctp ?? 'default').split('|').map((s) => (s === 'default' ? undefined : (JSON.parse(s) as Record<string, number>)));
for (const p of paths) if (p !== 'turn' && p !== 'direct' && p !== 'proxied') throw new Error(`--path ${p}: turn, direct or proxied`);
/** Paths with `--ms` latency (and a delay proxy whose buffers `--proxy-buffer` sets). */
const delayed = (p: Path) => p !== 'direct';
for (const x of [mbps, ...frames, bulk, paced, gapMs, ...latencies, ...chunks, ...highs, ...lows, ...proxyBufs]) if (!(Number.isFinite(x) && x >= 0)) throw new Error(`bad number in the flags: ${x}`);

const PEER = fileURLToPath(new URL('./p2p-throughput-peer.ts', import.meta.url));

function startPeer(ns: string, cfg: PeerConfig): { child: ChildProcess; lines: AsyncIterable<string>; log: () => string } {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', PEER, JSON.stringify(cfg)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  return { child, lines: createInterface({ input: child.stdout! }), log: () => err.slice(-2000) };
}

type Path = 'turn' | 'direct' | 'proxied';

interface Config {
  path: Path;
  ms: number;
  chunk: number;
  high: number;
  low: number;
  sctp: Record<string, number> | undefined;
  burst: SctpBurst;
  stack: NodeWebrtcStack;
  proxyBuf: number;
  frameBytes: number;
  stripes: number;
}

console.log(`bench:p2p-throughput  ${machine()}`);
console.log(`tbf ${mbps} Mbit/s up and down per namespace; ${bulk} frames at once, then ${paced} one at a time after ${gapMs} ms idle`);
const net = createNetnsLinks(2, { upMbps: mbps, downMbps: mbps, ...(f.queue ? { queueBytes: Number(f.queue) * 1024 } : {}) });
const turn = paths.includes('turn') ? await startTurnServer({ ip: net.hostIp, niceness: TURN_NICENESS }) : null;
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => turn?.killNow());
const proxies = new Map<string, UdpDelayProxy>();
let proxyNow: UdpDelayProxy | null = null;
const rows: (string | number)[][] = [];
try {
  const configs: Config[] = [];
  for (const path of paths)
    for (const ms of delayed(path) ? latencies : [0])
      for (const chunk of chunks) for (const high of highs) for (const low of lows) for (const sctp of sctps) for (const burst of bursts) for (const stack of stacks) for (const proxyBuf of delayed(path) ? proxyBufs : [0]) for (const frameBytes of frames) for (const stripes of stripeCounts) configs.push({ path, ms, chunk, high, low, sctp, burst, stack, proxyBuf, frameBytes, stripes });
  // SCTP settings and burst limits are libdatachannel's: libwebrtc runs once, under the first burst value.
  for (const c of configs.filter((c) => !(c.sctp && c.stack === 'libwebrtc') && !(c.stack === 'libwebrtc' && c.burst !== bursts[0]))) {
    let rtc: RTCConfiguration = {};
    proxyNow = null;
    // proxied: b's host candidates through delay proxies, 2 x --ms each way (turn's round trip).
    const cands = c.path === 'proxied' ? new CandidateProxies({ listenHost: net.hostIp, delayMs: 2 * c.ms, socketBytes: c.proxyBuf * 1024, proxiedEnd: 'b' }) : null;
    if (c.path === 'turn') {
      const key = `${c.ms}/${c.proxyBuf}`;
      let proxy = proxies.get(key);
      if (!proxy) proxies.set(key, (proxy = await startUdpDelayProxy({ listenHost: net.hostIp, target: { host: net.hostIp, port: turn!.port }, delayMs: c.ms, socketBytes: c.proxyBuf * 1024 })));
      proxyNow = proxy;
      const cred = await turnCredentials(turn!.secret, 'bench', 3600);
      rtc = { iceServers: [{ urls: `turn:${net.hostIp}:${proxy.port}?transport=udp`, username: cred.username, credential: cred.credential }], iceTransportPolicy: 'relay' };
    }
    const base = { rtc, link: { chunkBytes: c.chunk * 1024, highWaterBytes: c.high * 1024, lowWaterBytes: c.low * 1024 }, ...(c.sctp ? { sctp: c.sctp } : {}), sctpBurst: c.burst, stack: c.stack, stripes: c.stripes, frameBytes: c.frameBytes, bulk, paced, gapMs };
    const drops0 = net.drops();
    const udp0 = net.namespaces.map((n) => udpRcvbufErrors(n));
    const port0 = udpDropsByPort(net.hostIp);
    const a = startPeer(net.namespaces[0]!, { ...base, self: 'a', peer: 'b', role: 'send' });
    const b = startPeer(net.namespaces[1]!, { ...base, self: 'b', peer: 'a', role: 'recv' });
    const ends = { a, b };
    let result: PeerResult | null = null;
    let down = '';
    const pump = async (from: 'a' | 'b') => {
      for await (const line of ends[from].lines) {
        const m = JSON.parse(line) as { to?: 'a' | 'b'; signal?: unknown; result?: PeerResult; down?: { failure: string; detail: string } };
        const signal = m.signal && cands ? await cands.rewrite(from, m.signal as { type: string }) : m.signal;
        if (m.to && signal) ends[m.to].child.stdin!.write(JSON.stringify({ from, signal }) + '\n');
        if (m.result) result = m.result;
        if (m.down) down ||= `${from}: ${m.down.failure} (${m.down.detail})`;
        if (result) return;
      }
    };
    const timeout = new Promise<void>((r) => setTimeout(r, 120_000).unref());
    await Promise.race([Promise.all([pump('a'), pump('b')]).then(() => undefined), pump('a'), timeout]);
    for (const e of [a, b]) {
      e.child.stdin!.end();
      setTimeout(() => e.child.kill('SIGKILL'), 2000).unref();
    }
    await Promise.all([a, b].map((e) => (e.child.exitCode === null ? new Promise((r) => e.child.once('exit', r)) : null)));
    const drops = net.drops();
    const udp = net.namespaces.map((n, i) => udpRcvbufErrors(n) - udp0[i]!);
    // Root-namespace drops split by socket: the delay proxy's (an emulation artefact) and coturn's (every other port on the bridge).
    const { mine: proxyDrops, others: turnDrops } = sumDrops(port0, udpDropsByPort(net.hostIp), new Set([...((proxyNow as UdpDelayProxy | null)?.ports() ?? []), ...((await cands?.ports()) ?? [])]));
    await cands?.close();
    const modelMs = ((c.frameBytes * 8) / (mbps * 1e6)) * 1000 + (delayed(c.path) ? 4 * c.ms : 0);
    // K stripes: K associations each restarting from 10 MTUs = one frame starting from K x 10 (usrsctp's limits; lifted: no restart, the model column applies).
    const ssMs = c.stack === 'libdatachannel' && c.burst === 'lifted' ? null : slowStartWireMs(c.frameBytes, mbps, delayed(c.path) ? c.ms : 0, undefined, 10 * c.stripes) + (delayed(c.path) ? 2 * c.ms : 0); // + the ack's way back
    const r = result as PeerResult | null;
    const label = [`${c.frameBytes / 1024}K`, String(c.stripes), c.path, delayed(c.path) ? `${c.ms} ms` : '-', c.proxyBuf ? `${c.proxyBuf}K` : '-', `${c.chunk}K`, `${c.high}K/${c.low}K`, c.stack, c.stack === 'libdatachannel' ? c.burst : '-', c.sctp ? JSON.stringify(c.sctp) : 'default'];
    if (!r) {
      rows.push([...label, 'failed', down || a.log().split('\n').slice(-3).join(' ') || 'timeout', '', '', '', '', '']);
    } else {
      rows.push([...label, fmt((r.bulkBytes * 8) / (r.bulkMs / 1000) / 1e6, 1), fmt(median(r.pacedMs), 0), fmt(modelMs, 0), ssMs === null ? '-' : fmt(ssMs, 0), r.rttMs === null ? '-' : fmt(r.rttMs, 0), `${drops.up - drops0.up}/${drops.down - drops0.down}`, `${proxyDrops}/${turnDrops}/${udp.join('/')}`]);
    }
    console.log(`  ${rows.at(-1)!.join('  ')}`);
  }
} finally {
  for (const p of proxies.values()) await p.close();
  await turn?.stop();
  net.remove();
}
console.log(table(['frame', 'stripes', 'path', 'latency', 'proxy buf', 'chunk', 'high/low', 'stack', 'burst', 'sctp', 'bulk Mbit/s', 'paced ms', 'model ms', 'slow-start ms', 'rtt ms', 'tbf drops up/down', 'udp drops proxy/coturn/a/b'], rows));
console.log('model ms: frame / rate + the send and ack latencies (turn: 2 x one-way each side of coturn, the ack 2 x again: bytes/rate + 4 x ms)');
console.log('slow-start ms: the same if each frame restarts from a 10-MTU window per stripe doubling per round trip (usrsctp\'s burst limits, burst limited): rounds x RTT + bytes/rate; - where they are lifted');
console.log('udp drops: datagrams lost to full socket receive buffers: the delay proxy\'s and coturn\'s sockets on the bridge (/proc/net/udp), each namespace\'s (RcvbufErrors)');
