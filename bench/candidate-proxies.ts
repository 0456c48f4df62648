/**
 * bench/p2p-throughput.ts's `--path proxied`: a direct (host-candidate) WebRTC path with latency,
 * for machines without coturn (the `turn` path's relay) or netem. The parent carries the two ends'
 * signals; this rewrites them on the way:
 *
 * - every IPv4 UDP host candidate of the proxied end (in a `candidate` signal or an SDP line) is
 *   replaced by a testing/udp-delay-proxy.ts in the root namespace that forwards to it, each
 *   datagram delayed `delayMs` each way;
 * - the other end's candidates are withheld, so the proxied end answers connectivity checks to
 *   the proxy's address it saw them from (a peer-reflexive candidate): both directions cross it.
 *
 * One proxy per candidate address (with K stripes, K of them). Bench-only: signals are the bench's own.
 */
import { startUdpDelayProxy, type UdpDelayProxy } from '../testing/udp-delay-proxy.js';

type AnySignal = { type: string; candidate?: string; sdp?: string };

export class CandidateProxies {
  private readonly byTarget = new Map<string, Promise<UdpDelayProxy>>();

  constructor(
    private readonly opts: { listenHost: string; delayMs: number; socketBytes: number; proxiedEnd: string },
  ) {}

  /** `signal` from `from` as the other end should see it, or null to withhold it. */
  async rewrite(from: string, signal: AnySignal): Promise<AnySignal | null> {
    const proxied = from === this.opts.proxiedEnd;
    if (signal.type === 'candidate') {
      if (signal.candidate === '') return signal;
      if (!proxied) return null;
      const line = await this.line(signal.candidate ?? '');
      return line === null ? null : { ...signal, candidate: line };
    }
    if ((signal.type === 'offer' || signal.type === 'answer') && signal.sdp) {
      const out: string[] = [];
      for (const l of signal.sdp.split('\r\n')) {
        if (!l.startsWith('a=candidate:')) out.push(l);
        else if (proxied) {
          const line = await this.line(l.slice(2));
          if (line !== null) out.push(`a=${line}`);
        }
      }
      return { ...signal, sdp: out.join('\r\n') };
    }
    return signal;
  }

  /** The proxies started (their ports, for the drop counters). */
  async ports(): Promise<number[]> {
    return (await Promise.all(this.byTarget.values())).flatMap((p) => p.ports());
  }

  async close(): Promise<void> {
    for (const p of this.byTarget.values()) await (await p).close();
    this.byTarget.clear();
  }

  /** A candidate line through a proxy (null: not an IPv4 UDP host candidate, withheld). */
  private async line(candidate: string): Promise<string | null> {
    // candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> ...
    const f = candidate.split(' ');
    const [address, port] = [f[4] ?? '', Number(f[5])];
    if (f[2]?.toUpperCase() !== 'UDP' || f[7] !== 'host' || !/^\d+\.\d+\.\d+\.\d+$/.test(address) || address.startsWith('127.')) return null;
    const key = `${address}:${port}`;
    let proxy = this.byTarget.get(key);
    if (!proxy) {
      proxy = startUdpDelayProxy({ listenHost: this.opts.listenHost, target: { host: address, port }, delayMs: this.opts.delayMs, socketBytes: this.opts.socketBytes });
      this.byTarget.set(key, proxy);
    }
    const p = await proxy;
    f[4] = p.host;
    f[5] = String(p.port);
    return f.join(' ');
  }
}
