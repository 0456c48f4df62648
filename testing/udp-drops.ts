/**
 * UDP datagrams the kernel dropped because a socket's receive buffer was full: per local port on
 * one address (the `drops` column of /proc/net/udp, this process's network namespace), and per
 * network namespace (`RcvbufErrors` of /proc/net/snmp). Benchmarks of emulated links use them to
 * tell losses a real link would have (tbf queues) from losses of the emulation's own userspace
 * relays (testing/udp-delay-proxy.ts) or of coturn. Linux only.
 *
 *   const before = udpDropsByPort('10.77.0.1');
 *   // ... traffic ...
 *   const lost = sumDrops(before, udpDropsByPort('10.77.0.1'), new Set(proxy.ports()));
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Drops so far per local UDP port bound to `ip` (IPv4) in this namespace. */
export function udpDropsByPort(ip: string): Map<number, number> {
  const hex = ip
    .split('.')
    .map(Number)
    .reverse()
    .map((b) => b.toString(16).padStart(2, '0'))
    .join('')
    .toUpperCase();
  const out = new Map<number, number>();
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 13) continue;
    const [addr, port] = cols[1]!.split(':');
    if (addr === hex) out.set(parseInt(port!, 16), Number(cols[12]));
  }
  return out;
}

/** Drops between two `udpDropsByPort` readings, split into the ports in `mine` and every other port. */
export function sumDrops(before: Map<number, number>, after: Map<number, number>, mine: Set<number>): { mine: number; others: number } {
  let m = 0;
  let o = 0;
  for (const [port, n] of after) {
    const d = n - (before.get(port) ?? 0);
    if (mine.has(port)) m += d;
    else o += d;
  }
  return { mine: m, others: o };
}

/** UDP receive-buffer overflows so far in network namespace `ns` (all sockets), or in this one. */
export function udpRcvbufErrors(ns?: string): number {
  const text = ns ? execFileSync('ip', ['netns', 'exec', ns, 'cat', '/proc/net/snmp'], { encoding: 'utf8' }) : readFileSync('/proc/net/snmp', 'utf8');
  const [head, vals] = text.split('\n').filter((l) => l.startsWith('Udp:'));
  if (!head || !vals) return 0;
  const i = head.split(/\s+/).indexOf('RcvbufErrors');
  return i < 0 ? 0 : Number(vals.split(/\s+/)[i]);
}
