/**
 * The real swarm, relay vs peer to peer (issue 23): a coordinator and Node volunteers (one per
 * stage) train the same run with `--transport relay` and `--transport p2p`, alternated; printed
 * side by side: seconds per iteration, activation/gradient bytes the coordinator relayed per
 * iteration, bytes tabs sent each other, fallbacks.
 *
 *   npm run bench:p2p-swarm                                (tiny, 4 stages, 10 iterations, 2 rounds)
 *   npm run bench:p2p-swarm -- --preset small --iterations 5 --pace 100 --rounds 1
 *   sudo npm run bench:p2p-swarm -- --links 50/20 --preset small --batch 8 --wire f32 --pace 300
 *   sudo npm run bench:p2p-swarm -- --links 50/20 --tcp-path emulated   (the relay's TCP as before: see below)
 *
 * Without `--links`, links are NOT emulated: every tab and the coordinator share this machine's
 * loopback, so this measures what leaves the coordinator and the transports' own overhead.
 *
 * `--links MBPS/MS` (root, iproute2, coturn) emulates a home link per volunteer for the coordinator
 * traffic and the peer traffic alike: each volunteer is a child process in a network namespace of
 * its own (testing/netns-links.ts), whose veth pair has a `tbf` qdisc of MBPS Mbit/s on each end
 * (uplink and downlink). The kernel has no netem, so the MS ms one-way latency is added in
 * userspace. socket.io to the coordinator: with `--tcp-path kernel` (the default where it can be
 * set up) over a VXLAN overlay whose UDP underlay crosses the tbf links and a UDP delay of MS ms
 * each way (testing/tcp-overlay.ts), so TCP runs end to end over the true round trip and does its
 * own slow start, slow start after idle and loss recovery; with `--tcp-path emulated` through
 * testing/link-emulator.ts (TCP ends in the root namespace, a LAN round trip; the emulator adds
 * the latency as an ideal pipe, the rate is tbf's). `--tcp-cc NAME` sets the volunteers'
 * namespaces' TCP congestion control for the kernel path (default: the kernel's; the server side
 * keeps the root namespace's). `--coord-mbps MBPS` shapes the coordinator's own link on the kernel
 * path (a tbf each way on the overlay's server end, shared by every volunteer's TCP): the share of
 * a server's link that these tabs would have among many pipelines, where the relay pays for its
 * second crossing (default: unshaped). WebRTC goes through a real coturn (testing/turn-server.ts; the tabs
 * offer relayed candidates only) behind testing/udp-delay-proxy.ts, which delays every datagram
 * MS ms each way; or, with `--peer-path overlay` (the default where coturn is not installed),
 * across the overlay, each volunteer's ICE bound to its overlay address: the same links and
 * delays, with the overlay's switch (a kernel bridge) in coturn's place. So a relayed frame
 * crosses: sender's uplink, +MS, coordinator, +MS, receiver's downlink; a p2p frame: sender's
 * uplink, +MS, coturn or the switch (per datagram or packet, not per frame), +MS, receiver's
 * downlink. `--pace` (ms) makes every task last at least that long (a p2p frame leaves
 * no earlier than a relayed one), so compute on a shared CPU is not what is measured.
 *
 * With `--links`, every hop is traced (shared/transport/hop-trace.ts; each volunteer process
 * writes its marks to a file) and a second table gives, per run, the median of each segment of a
 * hop (bench/hop-breakdown.ts: relay up/coord/down, p2p wire/ack/report/coord/down, the receiver's
 * wait) beside the link model's hop time, the slow-start model (p2p: SCTP's `wire`; relay over
 * the kernel path: TCP's `up`/`down` from 10 segments), the tbf qdiscs' packet drops, the UDP
 * relays' drops and how late the overlay's pipes ran. `P2P_SCTP='{...}'` in the environment hands
 * libdatachannel SCTP settings to the volunteers (an experiment).
 *
 * `--stack LIST` (default libdatachannel): the Node WebRTC stack(s) of the volunteers
 * (trainer/node-webrtc.ts); each round runs the relay once and p2p once per stack, on the same
 * emulated network, and the ratio to the relay is printed per stack.
 * `--stripes LIST` (default 1): peer connections per pair (the coordinator's `--p2p-stripes`,
 * shared/transport/striped-link.ts); each value is a p2p run of its own, with its own ratio.
 * `--sctp-burst LIST` (default lifted): usrsctp's burst limits in the volunteers on libdatachannel
 * (trainer/sctp-burst.ts: `lifted`, or usrsctp's own `limited`); each value is a p2p run of its own.
 */
import { Coordinator, DEFAULT_COORDINATOR } from '../coordinator/server.js';
import { startNodeVolunteer, type NodeVolunteer } from '../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../shared/run-settings.js';
import type { Transport } from '../shared/protocol/p2p-messages.js';
import { until } from '../testing/until.js';
import { flags, fmt, fmtBytes, list, machine, table } from './util.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createNetnsLinks, type NetnsLinks } from '../testing/netns-links.js';
import { createTcpOverlay, type TcpOverlay } from '../testing/tcp-overlay.js';
import { startLinkEmulator, type LinkEmulator } from '../testing/link-emulator.js';
import { TURN_NICENESS, startTurnServer, turnServerBinary, type TurnServer } from '../testing/turn-server.js';
import { startUdpDelayProxy, type UdpDelayProxy } from '../testing/udp-delay-proxy.js';
import { sumDrops, udpDropsByPort } from '../testing/udp-drops.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setHopTraceSink, type HopTraceEvent } from '../shared/transport/hop-trace.js';
import { groupMarks, modelHopMs, slowStartWireMs, summarise, tcpSlowStartMs, SEGMENTS } from './hop-breakdown.js';
import { DEFAULT_NODE_STACK, parseNodeStack, type NodeWebrtcStack } from '../trainer/node-webrtc.js';
import { DEFAULT_SCTP_BURST, parseSctpBurst, SCTP_BURSTS, type SctpBurst } from '../trainer/sctp-burst.js';
import { isStripeCount, MAX_STRIPES } from '../shared/protocol/signal.js';

const HELP = `bench/p2p-swarm.ts: the real swarm, --transport relay vs p2p, side by side (see the header of this file)
  --preset NAME       model preset (default tiny)          --stages N      stages, one volunteer each (default 4)
  --iterations N      measured iterations (default 10)     --warmup N      iterations before measuring (default 2)
  --pace MS           every task lasts at least MS (default 0)   --rounds N  relay+p2p pairs (default 2)
  --batch N           batch per microbatch (default 2)     --wire f32|...  frame encoding (default: the run's)
  --stack LIST        Node WebRTC stack(s) of the volunteers (default ${DEFAULT_NODE_STACK})
  --stripes LIST      peer connections per pair in p2p, 1 .. ${MAX_STRIPES} (the coordinator's --p2p-stripes; default 1):
                      each value is a p2p run of its own, labelled p2p/kK when K > 1
  --sctp-burst LIST   usrsctp's burst limits in libdatachannel volunteers: ${SCTP_BURSTS.join(' | ')} (default ${DEFAULT_SCTP_BURST});
                      each value is a p2p run of its own, labelled p2p/<value> when more than one is listed
  --links MBPS/MS     (root) each volunteer in a network namespace behind tbf links of MBPS, MS one-way added in userspace
  --tcp-path kernel|emulated   (--links) the relay's socket.io over kernel TCP through the links and the delay
                      (a VXLAN overlay, testing/tcp-overlay.ts; default where it can be set up) or through the link emulator
  --tcp-cc NAME       (--links, kernel path) TCP congestion control of the volunteers' namespaces (default: the kernel's)
  --coord-mbps MBPS   (--links, kernel path) shape the coordinator's own link to MBPS each way (default: unshaped, a
                      server); e.g. a 1 Gbit/s server's share for these tabs in a swarm of 1000/MBPS such pipelines
  --peer-path turn|overlay     (--links) peer frames through coturn behind the UDP delay proxy (relayed candidates only),
                      or across the overlay (ICE bound to the overlay address; libdatachannel); default turn where coturn is installed
  --help`;

const f = flags(process.argv.slice(2), { help: 'boolean', preset: 'string', stages: 'string', iterations: 'string', warmup: 'string', pace: 'string', rounds: 'string', batch: 'string', wire: 'string', links: 'string', stack: 'string', 'tcp-path': 'string', 'tcp-cc': 'string', 'peer-path': 'string', stripes: 'string', 'coord-mbps': 'string', 'sctp-burst': 'string' });
if (f.help) {
  console.log(HELP);
  process.exit(0);
}
const stacks = list(f.stack, [DEFAULT_NODE_STACK]).map(parseNodeStack);
const stripeCounts = list(f.stripes, ['1']).map(Number);
for (const k of stripeCounts) if (!isStripeCount(k)) throw new Error(`--stripes ${k}: 1 .. ${MAX_STRIPES}`);
const bursts = list(f['sctp-burst'], [DEFAULT_SCTP_BURST]).map(parseSctpBurst);
interface Variant {
  stack: NodeWebrtcStack;
  stripes: number;
  /** usrsctp's burst limits (libdatachannel only: null on libwebrtc). */
  burst: SctpBurst | null;
}
/** The p2p variants: each stack with each stripe count (and on libdatachannel each burst setting). */
const variants: Variant[] = stacks.flatMap((stack) =>
  stripeCounts.flatMap((stripes) => (stack === 'libdatachannel' ? bursts : [null]).map((burst) => ({ stack, stripes, burst }))),
);
/** A run's label: the transport; for p2p the stack when more than one stack runs or it is not the default, K, and the burst setting when more than one is listed or it is not the default. */
const label = (t: Transport, v: Variant) =>
  t === 'relay'
    ? t
    : `${t}${stacks.length === 1 && v.stack === DEFAULT_NODE_STACK ? '' : `/${v.stack}`}${v.stripes > 1 ? `/k${v.stripes}` : ''}${v.burst && (bursts.length > 1 || v.burst !== DEFAULT_SCTP_BURST) ? `/${v.burst}` : ''}`;
const stages = Number(f.stages ?? 4);
const iterations = Number(f.iterations ?? 10);
const warmup = Number(f.warmup ?? 2);
const pace = Number(f.pace ?? 0);
const rounds = Number(f.rounds ?? 2);
const linkSpec = f.links ? /^(\d+(?:\.\d+)?)\/(\d+(?:\.\d+)?)$/.exec(f.links as string) : null;
if (f.links && !linkSpec) throw new Error(`--links ${f.links}: expected MBPS/MS, e.g. 50/20`);
const links = linkSpec ? { mbps: Number(linkSpec[1]), latencyMs: Number(linkSpec[2]) } : null;
const tcpPath = f['tcp-path'] as string | undefined;
if (tcpPath !== undefined && tcpPath !== 'kernel' && tcpPath !== 'emulated') throw new Error(`--tcp-path ${tcpPath}: expected kernel or emulated`);
const peerPathFlag = f['peer-path'] as string | undefined;
if (peerPathFlag !== undefined && peerPathFlag !== 'turn' && peerPathFlag !== 'overlay') throw new Error(`--peer-path ${peerPathFlag}: expected turn or overlay`);
if ((tcpPath || f['tcp-cc'] || peerPathFlag || f['coord-mbps']) && !links) throw new Error('--tcp-path, --tcp-cc, --peer-path and --coord-mbps need --links');
const coordMbps = f['coord-mbps'] === undefined ? undefined : Number(f['coord-mbps']);
if (coordMbps !== undefined && !(coordMbps > 0)) throw new Error(`--coord-mbps ${f['coord-mbps']}: expected Mbit/s > 0`);
if (coordMbps !== undefined && tcpPath === 'emulated') throw new Error('--coord-mbps shapes the kernel TCP path: not with --tcp-path emulated');
/** How peer frames cross the links: coturn behind the UDP delay proxy, or the overlay's switch (default: turn where coturn is installed). */
const peerPath = peerPathFlag ?? (turnServerBinary() ? 'turn' : 'overlay');
if (links && peerPath === 'overlay' && stacks.some((s) => s !== 'libdatachannel')) throw new Error('--peer-path overlay binds ICE to the overlay address, an option only libdatachannel has: use --stack libdatachannel or --peer-path turn');
if (links && peerPath === 'overlay' && tcpPath === 'emulated') console.log('note: --peer-path overlay with --tcp-path emulated: peer frames cross the kernel path, the relay\'s TCP the link emulator');
const settings: RunSettings = {
  ...DEFAULT_SETTINGS,
  preset: (f.preset as string) ?? 'tiny',
  stages,
  microbatches: 4,
  batch: Number(f.batch ?? 2),
  recovery: 'checkfree',
  ...(f.wire ? { wire: f.wire as RunSettings['wire'] } : {}),
};

async function sum(coord: Coordinator, name: string, label?: string): Promise<number> {
  const text = await coord.metrics.text();
  let total = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) if (!label || (m[1] ?? '').includes(label)) total += Number(m[2]);
  return total;
}

/**
 * The emulated network of `--links`, shared by every run: namespaces; coturn and the UDP delay
 * (`--peer-path turn`); the overlay of testing/tcp-overlay.ts (null: not set up), which carries
 * the relay's TCP when `kernelTcp` and peer frames with `--peer-path overlay`.
 */
interface Emulated {
  net: NetnsLinks;
  turn: TurnServer | null;
  udp: UdpDelayProxy | null;
  overlay: TcpOverlay | null;
  kernelTcp: boolean;
}

/** The overlay, when a path needs it; without `--tcp-path`, null (and a note) where it cannot be set up and only the relay's TCP wanted it. */
async function overlayFor(net: NetnsLinks, latencyMs: number): Promise<TcpOverlay | null> {
  if (tcpPath === 'emulated' && peerPath !== 'overlay') return null;
  try {
    return await createTcpOverlay(net, { delayMs: latencyMs, ...(f['tcp-cc'] ? { congestionControl: f['tcp-cc'] as string } : {}), ...(coordMbps ? { serverMbps: coordMbps } : {}) });
  } catch (e) {
    if (tcpPath === 'kernel' || peerPath === 'overlay' || coordMbps) throw e;
    console.log(`note: the kernel TCP path is not available (${(e as Error).message}); the relay's TCP goes through the link emulator (--tcp-path emulated)`);
    return null;
  }
}

async function emulate(l: { mbps: number; latencyMs: number }): Promise<Emulated> {
  const net = createNetnsLinks(stages, { upMbps: l.mbps, downMbps: l.mbps });
  const overlay = await overlayFor(net, l.latencyMs);
  if (peerPath === 'overlay') return { net, turn: null, udp: null, overlay, kernelTcp: tcpPath !== 'emulated' };
  const turn = await startTurnServer({ ip: net.hostIp, niceness: TURN_NICENESS });
  // 4 MiB socket buffers: with the kernel's ~208 KiB, the proxy (a JS event loop in this busy process)
  // dropped datagrams while stalled, losses no real link has (bench/p2p-throughput.ts: 300 drops in 2 MiB).
  const udp = await startUdpDelayProxy({ listenHost: net.hostIp, target: { host: net.hostIp, port: turn.port }, delayMs: l.latencyMs, socketBytes: 4 * 1024 * 1024 });
  // netns-links removes the namespaces on a signal and re-raises it; coturn must not outlive us either.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => turn.killNow());
  return { net, turn, udp, overlay, kernelTcp: overlay !== null };
}

const VOLUNTEER = fileURLToPath(new URL('./p2p-ns-volunteer.ts', import.meta.url));

/**
 * Volunteer `i` as a child process in its namespace, talking to the coordinator over the kernel
 * TCP path (`link` null) or through a latency-only link emulator; its ICE offers relayed
 * candidates only (TURN) or host candidates on its overlay address only.
 */
/** How many nice steps below this process the volunteer processes run (--links). */
const VOLUNTEER_NICE = 5;

async function nsVolunteer(em: Emulated, coordPort: number, i: number, latencyMs: number, traceFile: string, v: Variant): Promise<{ child: ChildProcess; link: LinkEmulator | null }> {
  const link = em.kernelTcp ? null : await startLinkEmulator({ target: `127.0.0.1:${coordPort}`, listenHost: em.net.hostIp, upMbps: 100_000, downMbps: 100_000, latencyMs, queueBytes: 8 * 1024 * 1024 });
  const url = link ? link.url : `http://${em.overlay!.hostIp}:${coordPort}`;
  // Volunteers run VOLUNTEER_NICE steps below this process: its coordinator, UDP delay proxy and overlay pipes stand for other machines and the network, and must not wait behind the tabs' compute.
  const child = spawn('ip', ['netns', 'exec', em.net.namespaces[i]!, 'nice', '-n', String(VOLUNTEER_NICE), process.execPath, '--import', 'tsx', VOLUNTEER, url, `b${i}`, String(pace), em.turn ? 'relay' : `bind=${em.overlay!.ips[i]}`, traceFile, v.stack], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(v.burst ? { NODE_SCTP_BURST: v.burst } : {}) } });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  child.once('exit', (code) => code && console.error(`volunteer b${i} exited ${code}:\n${out.slice(-2000)}`));
  return { child, link };
}

async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const gone = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
  if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

async function run(transport: Transport, v: Variant, em: Emulated | null): Promise<(string | number)[]> {
  const { stack, stripes } = v;
  const p2p = { transport, stripes, ...(em?.turn && em.udp ? { iceServers: [`turn:${em.net.hostIp}:${em.udp.port}?transport=udp`], turnSecret: em.turn.secret } : {}) };
  // Over the kernel path the coordinator listens on the overlay's root end (a server on an unshaped link).
  const coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, host: em?.kernelTcp ? em.overlay!.hostIp : '127.0.0.1', port: 0, silent: true, evalEvery: 0, maxReplicas: 1, maxIterations: warmup + iterations, p2p, ...(em ? { publicHosts: [em.net.hostIp] } : {}) });
  const vols: NodeVolunteer[] = [];
  const children: { child: ChildProcess; link: LinkEmulator | null }[] = [];
  /** Bytes on the volunteers' links to the coordinator so far: the emulators' payload, or the overlay's IP packets. */
  const coordLinkBytes = () => {
    const o = em?.kernelTcp ? em.overlay!.bytes() : null;
    return o ? o.up + o.down : children.reduce((a, c) => a + (c.link ? c.link.delivered.up + c.link.delivered.down : 0), 0);
  };
  // Hop-trace marks: the coordinator's here, each volunteer process's in a file of its own (--links only).
  const coordMarks: HopTraceEvent[] = [];
  const traceDir = mkdtempSync(join(tmpdir(), 'p2p-hops-'));
  const traceFiles = Array.from({ length: stages }, (_, i) => join(traceDir, `b${i}.jsonl`));
  setHopTraceSink(em ? (e) => coordMarks.push(e) : null);
  try {
    const url = await coord.listen();
    const port = Number(new URL(url).port);
    for (let i = 0; i < stages; i++) {
      if (em && links) children.push(await nsVolunteer(em, port, i, links.latencyMs, traceFiles[i]!, v));
      else vols.push(await startNodeVolunteer(url, { name: `b${i}`, stack, ...(v.burst ? { sctpBurst: v.burst } : {}), ...(pace ? { paceMs: pace } : {}) }));
    }
    await until(() => coord.scheduler.iteration >= warmup, 'warm-up', 600_000);
    const relay0 = (await sum(coord, 'swarm_relay_bytes_total', 'forward')) + (await sum(coord, 'swarm_relay_bytes_total', 'backward'));
    const p2p0 = await sum(coord, 'swarm_p2p_bytes_total');
    const wire0 = coordLinkBytes();
    const drops0 = em?.net.drops();
    const udp0 = em ? udpDropsByPort(em.net.hostIp) : null;
    const pipe0 = em?.overlay?.pipeDrops() ?? 0;
    const late0 = em?.overlay?.pipeLateness();
    const t0 = Date.now();
    await until(() => coord.scheduler.iteration >= warmup + iterations, `${iterations} iterations`, 1_200_000);
    const s = (Date.now() - t0) / 1000 / iterations;
    const relay = ((await sum(coord, 'swarm_relay_bytes_total', 'forward')) + (await sum(coord, 'swarm_relay_bytes_total', 'backward')) - relay0) / iterations;
    const peer = ((await sum(coord, 'swarm_p2p_bytes_total')) - p2p0) / iterations;
    const wire = (coordLinkBytes() - wire0) / iterations;
    const share = relay + peer > 0 ? (100 * relay) / (relay + peer) : 0;
    const loss = coord.scheduler.history.at(-1)?.trainLoss;
    if (em && links) {
      const d = em.net.drops();
      const udp1 = udpDropsByPort(em.net.hostIp);
      const u = sumDrops(udp0!, udp1, new Set(em.udp?.ports() ?? []));
      // The kernel path's pipes listen on the same address as the proxy and coturn: their drops are not coturn's.
      const pipeHere = em.overlay ? sumDrops(udp0!, udp1, new Set(em.overlay.pipePorts())).mine : 0;
      const pipe = em.overlay ? `/${em.overlay.pipeDrops() - pipe0}` : '';
      // The pipes are JS in this busy process: how late their datagrams left (mean over the measured iterations, largest since the start).
      const late = em.overlay?.pipeLateness();
      const lateCol = late && late0 ? `${fmt((late.sumMs - late0.sumMs) / Math.max(1, late.n - late0.n), 1)}/${fmt(late.maxMs, 0)}` : '-';
      hopRows.push([...hopRow(transport, label(transport, v), coordMarks, traceFiles, (relay + peer) / (2 * (stages - 1) * settings.microbatches), links, em.kernelTcp, v), `${d.up - drops0!.up}/${d.down - drops0!.down}`, `${u.mine}/${u.others - pipeHere}${pipe}`, lateCol]);
    }
    return [label(transport, v), fmt(s, 3), fmtBytes(relay), fmtBytes(peer), `${fmt(share, 1)}%`, em ? fmtBytes(wire) : '-', await sum(coord, 'swarm_p2p_fallbacks_total'), await sum(coord, 'swarm_abandoned_iterations_total'), coord.events.list('leave').length, loss === undefined ? '-' : loss.toFixed(6)];
  } finally {
    for (const v of vols) v.kill();
    await Promise.all(children.map((c) => stopChild(c.child)));
    for (const c of children) await c.link?.close();
    await coord.close();
    setHopTraceSink(null);
    rmSync(traceDir, { recursive: true, force: true });
  }
}

/** Medians of one run's hop segments (measured iterations only), next to the link model's hop time. */
const hopRows: (string | number)[][] = [];
function hopRow(transport: Transport, name: string, coordMarks: HopTraceEvent[], files: string[], frameBytes: number, l: { mbps: number; latencyMs: number }, kernelTcp: boolean, v: Variant): (string | number)[] {
  const events = [...coordMarks];
  for (const f of files) {
    try {
      for (const line of readFileSync(f, 'utf8').split('\n')) if (line) events.push(JSON.parse(line) as HopTraceEvent);
    } catch {
      /* a volunteer that traced nothing */
    }
  }
  const measured = (key: string) => Number(key.split(':')[1]) >= warmup;
  const { medians, hops } = summarise(groupMarks(events, measured));
  const model = modelHopMs(frameBytes, l.mbps, l.latencyMs, transport === 'relay' ? 'relay' : 'p2p');
  // p2p: SCTP's wire; relay: TCP's up/down where TCP crosses the links (the emulator's TCP never slow-starts against the latency).
  const tcp = fmt(tcpSlowStartMs(frameBytes, l.mbps, l.latencyMs), 0);
  // K stripes start a frame with K associations' 10-MTU windows (shared/transport/striped-link.ts); with the burst limits lifted no frame restarts from 10 MTUs (trainer/sctp-burst.ts).
  const slowStart = transport !== 'relay' ? (v.burst === 'lifted' ? '-' : fmt(slowStartWireMs(frameBytes, l.mbps, l.latencyMs, undefined, 10 * v.stripes), 0)) : kernelTcp ? `${tcp}/${tcp}` : '-';
  return [name, hops, fmtBytes(frameBytes), ...SEGMENTS.map((s) => (medians[s] === null ? '-' : fmt(medians[s]!, 0))), fmt(model, 0), slowStart];
}

console.log(`bench:p2p-swarm  ${machine()}`);
const em = links ? await emulate(links) : null;
const tcpWay = em?.kernelTcp && em.overlay
  ? `kernel TCP to the coordinator over a VXLAN overlay through the links and a UDP delay (congestion control: volunteers ${em.overlay.congestionControl.volunteers}, coordinator ${em.overlay.congestionControl.host}; the coordinator's own link ${coordMbps ? `shaped to ${coordMbps} Mbit/s each way` : 'unshaped'})`
  : 'TCP link emulator to the coordinator';
const where = links
  ? `each volunteer a process (${VOLUNTEER_NICE} nice steps below this one) in its own network namespace: tbf ${links.mbps} Mbit/s up and down, ${links.latencyMs} ms one-way added in userspace (${tcpWay}; ${em!.turn ? `UDP delay proxy to coturn (at nice ${TURN_NICENESS}), relayed ICE candidates only` : 'peer frames across the overlay\'s switch, ICE host candidates on the overlay address only'})`
  : 'loopback, links not emulated';
console.log(`preset ${settings.preset}, ${stages} stages (one tab each), ${settings.microbatches} microbatches x batch ${settings.batch}, wire ${settings.wire ?? 'default'}, ${iterations} iterations after ${warmup} warm-up, pace ${pace} ms, Node WebRTC ${stacks.join(' and ')}${stacks.includes('libdatachannel') ? ` (usrsctp burst limits ${bursts.join(' and ')})` : ''}; ${where}`);
const rows: (string | number)[][] = [];
try {
  for (let r = 0; r < rounds; r++)
    for (const t of list(undefined, ['relay', 'p2p']) as Transport[])
      for (const v of t === 'relay' ? [{ stack: stacks[0]!, stripes: 1, burst: null }] : variants) {
        rows.push(await run(t, v, em));
        console.log(`  done: ${rows.at(-1)!.join('  ')}`); // a run stopped early still says what it saw
      }
} finally {
  await em?.udp?.close();
  await em?.turn?.stop();
  await em?.overlay?.remove();
  em?.net.remove();
}
console.log(table(['transport', 's/iteration', 'coordinator relayed /it', 'peer to peer /it', 'coordinator share', 'coordinator link /it', 'fallbacks', 'abandoned', 'leaves', 'last loss'], rows));
if (hopRows.length) {
  console.log('per-hop medians, ms (hop: sender\'s paced end -> receiver has task and frame; see bench/hop-breakdown.ts)');
  console.log(table(['transport', 'hops', 'frame', ...SEGMENTS, 'model hop', 'slow-start wire or up/down', 'tbf drops up/down', `udp drops proxy/coturn${em?.overlay ? '/tcp pipes' : ''}`, 'pipe late ms mean/max'], hopRows));
}
const byT = (t: string) => rows.filter((r) => r[0] === t).map((r) => Number(r[1]));
const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
for (const v of variants) {
  const p = label('p2p', v);
  if (byT('relay').length && byT(p).length) console.log(`${p} / relay iteration time: ${fmt(mean(byT(p)) / mean(byT('relay')), 2)}x (target <= 0.6x on 50 Mbit/s / 20 ms links)`);
}
process.exit(0);
