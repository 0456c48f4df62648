/**
 * A UDP proxy that delays every datagram by `delayMs` in each direction: the one-way latency of
 * a home link for UDP traffic (WebRTC via TURN), which testing/link-emulator.ts (TCP) cannot
 * shape and this kernel's missing `netem` cannot add. Each client address gets its own upstream
 * socket, so the target (coturn) sees one distinct address per client, as it would behind NATs.
 * Rate is not limited here (bench/p2p-swarm.ts shapes rate with `tbf` on veth links); datagrams
 * keep their order since every one waits the same delay.
 *
 *   const proxy = await startUdpDelayProxy({ listenHost: '10.77.0.1', target: { host: '10.77.0.1', port: 3478 }, delayMs: 20 });
 *   // clients send to proxy.host:proxy.port
 */
import dgram from 'node:dgram';
import { DelayLine } from './delay-line.js';

export interface UdpDelayProxyOptions {
  listenHost: string;
  target: { host: string; port: number };
  /** One-way delay added to each datagram, each direction, ms. */
  delayMs: number;
  /**
   * SO_RCVBUF / SO_SNDBUF of every socket (default 0: the kernel's, ~208 KiB, or `net.core.rmem_default`).
   * This proxy is a JS event loop: on a loaded CPU it stalls for tens of ms, and a 50 Mbit/s stream
   * overflows a default receive buffer in ~35 ms; the datagrams dropped there are losses a real
   * link would not have (bench/p2p-throughput.ts counts them per socket). Capped by `net.core.rmem_max`.
   */
  socketBytes?: number;
}

export interface UdpDelayProxy {
  host: string;
  port: number;
  /** Datagrams forwarded: client -> target, target -> client. */
  forwarded: { up: number; down: number };
  /** The local ports of its sockets (the front one first): to find them in /proc/net/udp. */
  ports(): number[];
  /** The smallest receive buffer among its sockets, bytes, as the kernel reports it (Linux: twice what was set). */
  bufferBytes(): number;
  close(): Promise<void>;
}

export async function startUdpDelayProxy(opts: UdpDelayProxyOptions): Promise<UdpDelayProxy> {
  const line = new DelayLine(opts.delayMs); // checks delayMs before any socket exists
  const bufs = opts.socketBytes ? { recvBufferSize: opts.socketBytes, sendBufferSize: opts.socketBytes } : {};
  const socket = () => dgram.createSocket({ type: 'udp4', ...bufs });
  const front = socket();
  const upstreams = new Map<string, dgram.Socket>();
  const forwarded = { up: 0, down: 0 };
  const later = (send: () => void) => line.push(send);
  front.on('message', (msg, rinfo) => {
    const key = `${rinfo.address}:${rinfo.port}`;
    let up = upstreams.get(key);
    if (!up) {
      up = socket();
      up.on('message', (back) =>
        later(() => {
          forwarded.down++;
          front.send(back, rinfo.port, rinfo.address);
        }),
      );
      up.on('error', () => {});
      up.bind(0, opts.listenHost);
      upstreams.set(key, up);
    }
    const u = up;
    later(() => {
      forwarded.up++;
      u.send(msg, opts.target.port, opts.target.host);
    });
  });
  front.on('error', () => {});
  await new Promise<void>((resolve) => front.bind(0, opts.listenHost, () => resolve()));
  return {
    host: opts.listenHost,
    port: front.address().port,
    forwarded,
    ports: () => [front.address().port, ...[...upstreams.values()].flatMap((u) => {
      try {
        return [u.address().port];
      } catch {
        return []; // not bound yet
      }
    })],
    bufferBytes: () => Math.min(front.getRecvBufferSize(), ...[...upstreams.values()].map((u) => u.getRecvBufferSize())),
    close: async () => {
      line.close();
      for (const u of upstreams.values()) u.close();
      await new Promise<void>((r) => front.close(() => r()));
    },
  };
}
