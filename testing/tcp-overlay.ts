/**
 * A real kernel TCP path over the emulated home links of testing/netns-links.ts: one VXLAN
 * overlay per volunteer namespace, whose UDP underlay crosses that namespace's shaped veth (tbf
 * up and down) and a userspace delay of `delayMs` each way (testing/udp-pipe.ts). A TCP
 * connection from a namespace to `hostIp` (in the root namespace) then has the link's true round
 * trip and rate end to end, and both kernels run their own congestion control on it: slow start,
 * slow start after idle, loss recovery. testing/link-emulator.ts, by contrast, ends TCP in the
 * root namespace (a LAN round trip) and adds the delay as an ideal pipe. The kernel has no netem,
 * hence the detour through VXLAN.
 *
 * The root namespace's ends of the tunnels live in a switch namespace of their own: a VXLAN
 * device whose destination is a local address is short-cut inside the kernel ("local bypass",
 * which iproute2 6.1 cannot turn off), so it could not send to the pipe in this process. The
 * switch bridges its VXLAN devices to the root namespace over a veth (the server's side: unshaped,
 * as in link-emulator, unless `serverMbps` puts a tbf on each of its ends), and reaches the pipes
 * over a second one:
 *
 *   volunteer i: vx (VNI 1000+i) --UDP--> veth (tbf up) --> pipe i end a (+delayMs)
 *     --> switch: vxlan i --> bridge --> veth pb<pid>o (root: hostIp, where TCP ends)
 *   back: pb<pid>o --> switch bridge --> vxlan i --UDP--> veth pb<pid>u --> pipe i end b (+delayMs)
 *     --> veth (tbf down) --> vx
 *
 * The overlay MTU is 1450, so an encapsulated packet (50 bytes of VXLAN, UDP, IP and Ethernet
 * headers) fits a veth's 1500. TCP congestion control is the kernel's default for a new
 * namespace unless `congestionControl` names another for the volunteers' namespaces (only those
 * in the root's `net.ipv4.tcp_allowed_congestion_control` may be set there); the root namespace
 * keeps its own (the server's). Needs root, iproute2, python3 (see `txChecksumOff`) and a kernel with VXLAN; every device and
 * the switch namespace are named after this process's pid and removed by `remove()`, on exit,
 * SIGINT and SIGTERM.
 *
 *   const net = createNetnsLinks(4, { upMbps: 50, downMbps: 50 });
 *   const overlay = await createTcpOverlay(net, { delayMs: 20 });
 *   // in namespace i, connect to overlay.hostIp
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { instanceTag, ip, tbf, type NetnsLinks } from './netns-links.js';
import { removeOnExit } from './remove-on-exit.js';
import { startUdpPipe, type UdpPipe } from './udp-pipe.js';
import { udpDropsByPort } from './udp-drops.js';

export interface TcpOverlayOptions {
  /** One-way delay each direction, ms. */
  delayMs: number;
  /** TCP congestion control of the volunteers' namespaces (default: the kernel's for a new namespace). */
  congestionControl?: string;
  /**
   * The server's own link, Mbit/s each way (a tbf on each end of the overlay veth: every
   * volunteer's TCP to `hostIp` shares it). Default: unshaped.
   */
  serverMbps?: number;
}

export interface TcpOverlay {
  /** The root namespace's overlay address: listen here to be reached over the delayed path. */
  hostIp: string;
  /** Each namespace's overlay address. */
  ips: string[];
  /** Congestion control in use: the root namespace's (the server) and the volunteers' namespaces'. */
  congestionControl: { host: string; volunteers: string };
  /** Bytes through the root's overlay interface so far, IP packets with their headers: from the namespaces (`up`) and to them (`down`). */
  bytes(): { up: number; down: number };
  /** The pipes' local ports on the links' host address (`net.hostIp`): to tell their drops from others' there (testing/udp-drops.ts). */
  pipePorts(): number[];
  /** Datagrams the pipes' sockets (both ends) lost so far to full receive buffers: losses of the emulation, not of a link. */
  pipeDrops(): number;
  /** How late the pipes' datagrams left against their delay so far, all pipes: count, sum and largest, ms. */
  pipeLateness(): { n: number; sumMs: number; maxMs: number };
  /** Waits (up to 3 s) for the namespaces' TCP connections to finish closing over the path, then removes it all. */
  remove(): Promise<void>;
}

export const OVERLAY_MTU = 1450;
/** The shaped server link's queue (`serverMbps`), as netns-links' default for a volunteer's. */
const SERVER_QUEUE_BYTES = 1_000_000;
const VXLAN_PORT = 4789;

function inNs(ns: string, cmd: string, ...args: string[]): string {
  return execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/**
 * Turns off a device's transmit checksum offload (ethtool's `tx off`; no ethtool here, so its
 * ioctl from Python). A VXLAN device with offload leaves its inner TCP checksum for the hardware
 * to fill in; the packet reaches the pipe's UDP socket in this process with that field unfinished,
 * is re-sent as plain data, and the far end drops the segment (TcpInCsumErrors). Without offload
 * the kernel finishes the checksum before it encapsulates.
 */
const TX_CSUM_OFF = `
import ctypes, fcntl, socket, struct, sys
for name in sys.argv[1:]:
    ev = ctypes.create_string_buffer(struct.pack('II', 0x17, 0))  # ETHTOOL_STXCSUM, off
    ifr = struct.pack('16sP', name.encode(), ctypes.addressof(ev)).ljust(40, b'\\0')
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), 0x8946, ifr)  # SIOCETHTOOL
`;

function txChecksumOff(ns: string, ...devs: string[]): void {
  inNs(ns, 'python3', '-c', TX_CSUM_OFF, ...devs);
}

/** TCP states that still need the path: an orphaned socket in one retransmits for minutes into a removed overlay, and keeps its dead namespace (and the veth's host end) alive. */
const UNSETTLED = ['established', 'syn-sent', 'syn-recv', 'fin-wait-1', 'fin-wait-2', 'close-wait', 'last-ack', 'closing'].flatMap((st) => ['state', st]);

/** Waits (up to `maxMs`) until no TCP connection in the namespaces is still closing or open. */
async function settled(namespaces: readonly string[], maxMs = 3000): Promise<void> {
  const until = performance.now() + maxMs;
  for (;;) {
    const busy = namespaces.some((ns) => {
      try {
        return inNs(ns, 'ss', '-Htan', ...UNSETTLED) !== '';
      } catch {
        return false; // the namespace is gone
      }
    });
    if (!busy || performance.now() > until) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function counter(dev: string, name: 'rx_bytes' | 'tx_bytes'): number {
  try {
    return Number(readFileSync(`/sys/class/net/${dev}/statistics/${name}`, 'utf8'));
  } catch {
    return 0; // removed
  }
}

export async function createTcpOverlay(net: NetnsLinks, opts: TcpOverlayOptions): Promise<TcpOverlay> {
  const cc = opts.congestionControl;
  if (cc !== undefined && !/^[a-z0-9_]+$/.test(cc)) throw new RangeError(`congestionControl: not a name: ${cc}`);
  if (opts.serverMbps !== undefined && !(opts.serverMbps > 0)) throw new RangeError(`serverMbps must be > 0, got ${opts.serverMbps}`);
  const n = instanceTag();
  const tag = String(n);
  const sw = `p2pbench-${tag}-switch`;
  const overlayDev = `pb${tag}o`; // root end of the overlay veth
  const underlayDev = `pb${tag}u`; // root end of the switch's underlay veth
  const subnet = `172.${16 + (n % 16)}.${Math.floor(n / 16) % 250}`;
  const hostIp = `${subnet}.1`;
  const ips = net.namespaces.map((_, i) => `${subnet}.${10 + i}`);
  // The switch's underlay: a /30 in a second pid-derived block.
  const under = `172.${16 + (n % 16)}.${250 + (n % 5)}.${4 * (Math.floor(n / 16) % 60)}`;
  const [underHost, underSwitch] = [under.replace(/\.(\d+)$/, (_, d) => `.${Number(d) + 1}`), under.replace(/\.(\d+)$/, (_, d) => `.${Number(d) + 2}`)];
  const pipes: UdpPipe[] = [];
  const removeDevices = removeOnExit(() => {
    for (const args of [['netns', 'del', sw], ['link', 'del', overlayDev], ['link', 'del', underlayDev]]) {
      try {
        ip(...args);
      } catch {
        /* not created, or gone with the namespace */
      }
    }
  });
  const remove = async () => {
    await settled(net.namespaces);
    removeDevices();
    await Promise.all(pipes.splice(0).map((p) => p.close()));
  };
  try {
    ip('netns', 'add', sw);
    ip('-n', sw, 'link', 'set', 'lo', 'up');
    // Underlay: root <-> switch, for the encapsulated packets between the pipes and the switch's VXLAN devices.
    ip('link', 'add', underlayDev, 'type', 'veth', 'peer', 'name', 'u', 'netns', sw);
    ip('addr', 'add', `${underHost}/30`, 'dev', underlayDev);
    ip('link', 'set', underlayDev, 'up');
    ip('-n', sw, 'addr', 'add', `${underSwitch}/30`, 'dev', 'u');
    ip('-n', sw, 'link', 'set', 'u', 'up');
    ip('-n', sw, 'route', 'add', 'default', 'via', underHost);
    // Overlay: the switch's bridge <-> root's hostIp, the server's unshaped side.
    ip('link', 'add', overlayDev, 'type', 'veth', 'peer', 'name', 'o', 'netns', sw);
    ip('link', 'set', overlayDev, 'mtu', String(OVERLAY_MTU));
    ip('addr', 'add', `${hostIp}/24`, 'dev', overlayDev);
    ip('link', 'set', overlayDev, 'up');
    ip('-n', sw, 'link', 'add', 'sw0', 'type', 'bridge');
    ip('-n', sw, 'link', 'set', 'o', 'mtu', String(OVERLAY_MTU), 'master', 'sw0', 'up');
    for (let i = 0; i < net.namespaces.length; i++) {
      const ns = net.namespaces[i]!;
      const vni = String(1000 + i);
      const pipe = await startUdpPipe({ hostA: net.hostIp, hostB: underHost, toA: { host: net.ips[i]!, port: VXLAN_PORT }, toB: { host: underSwitch, port: VXLAN_PORT }, delayMs: opts.delayMs });
      pipes.push(pipe);
      const vx = `vx${i}`;
      ip('-n', sw, 'link', 'add', vx, 'type', 'vxlan', 'id', vni, 'dstport', String(VXLAN_PORT), 'local', underSwitch, 'nolearning');
      ip('-n', sw, 'link', 'set', vx, 'mtu', String(OVERLAY_MTU), 'master', 'sw0', 'up');
      txChecksumOff(sw, vx);
      inNs(sw, 'bridge', 'fdb', 'append', '00:00:00:00:00:00', 'dev', vx, 'dst', underHost, 'port', String(pipe.portB));
      ip('-n', ns, 'link', 'add', 'vx', 'type', 'vxlan', 'id', vni, 'dstport', String(VXLAN_PORT), 'local', net.ips[i]!, 'nolearning');
      ip('-n', ns, 'link', 'set', 'vx', 'mtu', String(OVERLAY_MTU));
      ip('-n', ns, 'addr', 'add', `${ips[i]}/24`, 'dev', 'vx');
      ip('-n', ns, 'link', 'set', 'vx', 'up');
      txChecksumOff(ns, 'vx');
      inNs(ns, 'bridge', 'fdb', 'append', '00:00:00:00:00:00', 'dev', 'vx', 'dst', net.hostIp, 'port', String(pipe.portA));
      if (cc) inNs(ns, 'sysctl', '-qw', `net.ipv4.tcp_congestion_control=${cc}`);
    }
    ip('-n', sw, 'link', 'set', 'sw0', 'up');
    if (opts.serverMbps !== undefined) {
      tbf(overlayDev, opts.serverMbps, SERVER_QUEUE_BYTES); // the server's uplink: root -> switch
      tbf('o', opts.serverMbps, SERVER_QUEUE_BYTES, sw); // its downlink: switch -> root
    }
  } catch (e) {
    await remove();
    throw new Error(`the VXLAN overlay could not be set up (root, iproute2 and a kernel with vxlan needed): ${(e as Error & { stderr?: Buffer }).stderr?.toString().trim() || (e as Error).message}`);
  }
  return {
    hostIp,
    ips,
    congestionControl: {
      host: execFileSync('sysctl', ['-n', 'net.ipv4.tcp_congestion_control'], { encoding: 'utf8' }).trim(),
      volunteers: net.namespaces[0] ? inNs(net.namespaces[0], 'sysctl', '-n', 'net.ipv4.tcp_congestion_control') : (cc ?? '-'),
    },
    bytes: () => ({ up: counter(overlayDev, 'rx_bytes'), down: counter(overlayDev, 'tx_bytes') }),
    pipePorts: () => pipes.map((p) => p.portA),
    pipeLateness: () =>
      pipes.map((p) => p.lateness()).reduce((a, l) => ({ n: a.n + l.n, sumMs: a.sumMs + l.sumMs, maxMs: Math.max(a.maxMs, l.maxMs) }), { n: 0, sumMs: 0, maxMs: 0 }),
    pipeDrops: () => {
      const [a, b] = [udpDropsByPort(net.hostIp), udpDropsByPort(underHost)];
      return pipes.reduce((n, p) => n + (a.get(p.portA) ?? 0) + (b.get(p.portB) ?? 0), 0);
    },
    remove,
  };
}
