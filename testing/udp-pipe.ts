/**
 * A two-ended UDP pipe with a one-way delay each direction: what arrives at end `a` is sent,
 * `delayMs` later, to `toB`; what arrives at end `b` is sent, `delayMs` later, to `toA`. Unlike
 * testing/udp-delay-proxy.ts (one front address, an upstream socket per client) both far ends are
 * fixed in advance, as two kernel VXLAN endpoints need (testing/tcp-overlay.ts): each sends to a
 * configured address and port, and neither answers to where a datagram came from. Rate is not
 * limited here (tbf on the veth links does that); datagrams keep their order.
 *
 *   const pipe = await startUdpPipe({ hostA: '10.77.0.1', hostB: '172.16.0.1', toA: { host: '10.77.0.10', port: 4789 }, toB: { host: '172.16.0.2', port: 4789 }, delayMs: 20 });
 *   // side A sends to 10.77.0.1:pipe.portA, side B to 172.16.0.1:pipe.portB
 */
import dgram from 'node:dgram';
import { DelayLine } from './delay-line.js';

export interface UdpPipeOptions {
  /** Addresses the ends listen on. */
  hostA: string;
  hostB: string;
  /** Where datagrams arriving at end b go. */
  toA: { host: string; port: number };
  /** Where datagrams arriving at end a go. */
  toB: { host: string; port: number };
  /** One-way delay, ms, each direction. */
  delayMs: number;
  /** SO_RCVBUF / SO_SNDBUF of both sockets (default 4 MiB: a JS event loop that stalls must not drop what a real link would carry). */
  socketBytes?: number;
}

export interface UdpPipe {
  portA: number;
  portB: number;
  /** Datagrams and bytes forwarded: a -> b (`ab`), b -> a (`ba`). */
  forwarded: { ab: number; ba: number; abBytes: number; baBytes: number };
  /** How late datagrams left against their due time, both directions (DelayLine.lateness). */
  lateness(): { n: number; sumMs: number; maxMs: number };
  close(): Promise<void>;
}

export async function startUdpPipe(opts: UdpPipeOptions): Promise<UdpPipe> {
  const ab = new DelayLine(opts.delayMs);
  const ba = new DelayLine(opts.delayMs);
  const bytes = opts.socketBytes ?? 4 * 1024 * 1024;
  const socket = () => dgram.createSocket({ type: 'udp4', recvBufferSize: bytes, sendBufferSize: bytes });
  const a = socket();
  const b = socket();
  const forwarded = { ab: 0, ba: 0, abBytes: 0, baBytes: 0 };
  a.on('message', (msg) =>
    ab.push(() => {
      forwarded.ab++;
      forwarded.abBytes += msg.length;
      b.send(msg, opts.toB.port, opts.toB.host);
    }),
  );
  b.on('message', (msg) =>
    ba.push(() => {
      forwarded.ba++;
      forwarded.baBytes += msg.length;
      a.send(msg, opts.toA.port, opts.toA.host);
    }),
  );
  for (const s of [a, b]) s.on('error', () => {});
  await Promise.all([new Promise<void>((r) => a.bind(0, opts.hostA, () => r())), new Promise<void>((r) => b.bind(0, opts.hostB, () => r()))]);
  return {
    portA: a.address().port,
    portB: b.address().port,
    forwarded,
    lateness: () => ({ n: ab.lateness.n + ba.lateness.n, sumMs: ab.lateness.sumMs + ba.lateness.sumMs, maxMs: Math.max(ab.lateness.maxMs, ba.lateness.maxMs) }),
    close: async () => {
      ab.close();
      ba.close();
      await Promise.all([a, b].map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
}
