/**
 * Emulated home links for processes of their own, UDP included: one Linux network namespace per
 * volunteer, joined to a bridge in the root namespace by a veth pair, with a `tbf` qdisc on each
 * end (the namespace's end shapes its uplink, the bridge's end its downlink). This kernel has no
 * `netem`, so tbf gives rate only; latency is added in userspace by whoever the namespaces talk to
 * (bench/p2p-swarm.ts: testing/link-emulator.ts for TCP, testing/udp-delay-proxy.ts for UDP).
 * Needs root and iproute2. Everything is named after this process's pid (`instanceTag`) and removed by
 * `remove()`, which also runs on exit, SIGINT and SIGTERM, so a failed run leaves nothing behind.
 *
 *   const net = createNetnsLinks(4, { upMbps: 50, downMbps: 50 });
 *   spawn('ip', ['netns', 'exec', net.namespaces[0], 'node', ...]); // reaches net.hostIp
 *   net.remove();
 */
import { execFileSync } from 'node:child_process';
import { removeOnExit } from './remove-on-exit.js';

export interface NetnsLinkSpec {
  upMbps: number;
  downMbps: number;
  /** Bytes a tbf queue holds before it drops (default 1 MB). */
  queueBytes?: number;
}

export interface NetnsLinks {
  /** The bridge's address in the root namespace: what every namespace reaches. */
  hostIp: string;
  namespaces: string[];
  /** Each namespace's own address. */
  ips: string[];
  /** Packets the tbf qdiscs dropped so far (queue full), summed over every namespace: uplinks and downlinks. */
  drops(): { up: number; down: number };
  remove(): void;
}

/** Runs `ip ARGS` (iproute2), throwing with its stderr on failure. */
export function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** The `dropped N` counter of a device's root qdisc (`tc -s qdisc show`). */
function qdiscDrops(dev: string, ns?: string): number {
  const args = ['-s', 'qdisc', 'show', 'dev', dev];
  const out = ns ? execFileSync('ip', ['netns', 'exec', ns, 'tc', ...args], { encoding: 'utf8' }) : execFileSync('tc', args, { encoding: 'utf8' });
  return Number(/dropped (\d+)/.exec(out)?.[1] ?? 0);
}

/** A `tbf` qdisc of `mbps` on `dev`'s egress (in `ns`, else the root namespace), dropping past `queueBytes` queued. */
export function tbf(dev: string, mbps: number, queueBytes: number, ns?: string): void {
  const cmd = ['qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', `${mbps}mbit`, 'burst', '32kb', 'limit', String(queueBytes)];
  if (ns) execFileSync('ip', ['netns', 'exec', ns, 'tc', ...cmd], { stdio: ['ignore', 'ignore', 'pipe'] });
  else execFileSync('tc', cmd, { stdio: ['ignore', 'ignore', 'pipe'] });
}

let instances = 0;

/**
 * A number naming one set of devices and namespaces (and choosing its subnets): this process's
 * pid and a count of the sets it made, so that a second set made in the same process does not
 * meet devices of an earlier one that the kernel has not finished removing (a veth whose
 * namespace still holds a closing TCP socket lingers).
 */
export function instanceTag(): number {
  return (process.pid % 10000) * 10 + (instances++ % 10);
}

export function createNetnsLinks(count: number, spec: NetnsLinkSpec): NetnsLinks {
  for (const k of ['upMbps', 'downMbps'] as const) if (!(spec[k] > 0)) throw new RangeError(`${k} must be > 0`);
  if (!(count >= 1 && count <= 200)) throw new RangeError(`count must be 1..200, got ${count}`);
  const n = instanceTag();
  const tag = String(n);
  const subnet = `10.${77 + (n % 100)}.${Math.floor(n / 100) % 250}`;
  const bridge = `pb${tag}br`;
  const namespaces = Array.from({ length: count }, (_, i) => `p2pbench-${tag}-${i}`);
  const ips = namespaces.map((_, i) => `${subnet}.${10 + i}`);
  const hostIp = `${subnet}.1`;
  const remove = removeOnExit(() => {
    for (const ns of namespaces) {
      try {
        ip('netns', 'del', ns);
      } catch {
        /* not created */
      }
    }
    try {
      ip('link', 'del', bridge);
    } catch {
      /* not created */
    }
  });
  try {
    ip('link', 'add', bridge, 'type', 'bridge');
    ip('addr', 'add', `${hostIp}/24`, 'dev', bridge);
    ip('link', 'set', bridge, 'up');
    const queue = spec.queueBytes ?? 1_000_000;
    namespaces.forEach((ns, i) => {
      const host = `pb${tag}v${i}h`;
      const inner = `pb${tag}v${i}n`;
      ip('netns', 'add', ns);
      ip('link', 'add', host, 'type', 'veth', 'peer', 'name', inner);
      ip('link', 'set', inner, 'netns', ns);
      ip('link', 'set', host, 'master', bridge);
      ip('link', 'set', host, 'up');
      ip('-n', ns, 'addr', 'add', `${ips[i]}/24`, 'dev', inner);
      ip('-n', ns, 'link', 'set', inner, 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      tbf(inner, spec.upMbps, queue, ns); // uplink: leaves the namespace
      tbf(host, spec.downMbps, queue); // downlink: leaves the bridge towards the namespace
    });
  } catch (e) {
    remove();
    throw new Error(`network namespaces could not be set up (root and iproute2 needed): ${(e as Error & { stderr?: Buffer }).stderr?.toString().trim() || (e as Error).message}`);
  }
  const drops = () => ({
    up: namespaces.reduce((n, ns, i) => n + qdiscDrops(`pb${tag}v${i}n`, ns), 0),
    down: namespaces.reduce((n, _, i) => n + qdiscDrops(`pb${tag}v${i}h`), 0),
  });
  return { hostIp, namespaces, ips, drops, remove };
}
