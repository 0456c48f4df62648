/**
 * An emulated home link in front of one volunteer: a TCP proxy on 127.0.0.1 that forwards to a
 * target (the coordinator) and shapes each direction on its own, like a router's queue:
 *
 *   up    volunteer -> target at `upMbps`,   then `latencyMs` one-way delay
 *   down  target -> volunteer at `downMbps`, then `latencyMs` one-way delay
 *
 * Each direction is a FIFO serializer: a chunk starts when the link is free, takes
 * bytes * 8 / rate to leave, and arrives `latencyMs` later. Chunks are cut to at most 16 KiB so a
 * large frame trickles out as it would in packets. When more than `queueBytes` wait in one
 * direction the sending socket is paused (TCP back-pressure). Delivery times are absolute, so
 * timer jitter never accumulates into a lower rate.
 *
 * Usage: `const link = await startLinkEmulator({ target: 'http://127.0.0.1:8080', upMbps: 20,
 * downMbps: 50, latencyMs: 30 })`, then connect to `link.url` instead of the target (a Node
 * volunteer: `startNodeVolunteer(url, { link })`; a browser tab: open `link.url`). `netem` is not
 * in this kernel, hence the proxy.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface LinkSpec {
  /** Volunteer -> target bandwidth, Mbit/s (10^6 bits). */
  upMbps: number;
  /** Target -> volunteer bandwidth, Mbit/s. */
  downMbps: number;
  /** One-way delay added in each direction, ms. */
  latencyMs: number;
  /** Bytes queued in one direction before the sender is paused (default 1 MiB). */
  queueBytes?: number;
}

export interface LinkEmulatorOptions extends LinkSpec {
  /** Where to forward: an http(s)/ws URL or `host:port`. */
  target: string;
  /** Address the proxy listens on (default 127.0.0.1; a bridge address for network namespaces). */
  listenHost?: string;
}

export interface LinkEmulator {
  /** http://127.0.0.1:<port>: the target's URL through the emulated link. */
  url: string;
  port: number;
  /** Bytes delivered so far in each direction. */
  delivered: { up: number; down: number };
  /** Changes both directions' rates from now on, for live and later connections (e.g. fast while a benchmark warms up). */
  setRates(upMbps: number, downMbps: number): void;
  close(): Promise<void>;
}

const SLICE_BYTES = 16 * 1024;

function checkSpec(s: LinkSpec): void {
  for (const k of ['upMbps', 'downMbps'] as const) {
    if (!(Number.isFinite(s[k]) && s[k] > 0)) throw new RangeError(`${k} must be a positive number, got ${s[k]}`);
  }
  if (!(Number.isFinite(s.latencyMs) && s.latencyMs >= 0)) throw new RangeError(`latencyMs must be >= 0, got ${s.latencyMs}`);
}

function parseTarget(target: string): { host: string; port: number } {
  const u = new URL(/^[a-z]+:\/\//.test(target) ? target : `tcp://${target}`);
  const port = Number(u.port || (u.protocol === 'https:' || u.protocol === 'wss:' ? 443 : 80));
  return { host: u.hostname, port };
}

/** One direction of the link: paces `from`'s data into `to`. */
class Pipe {
  private queue: { at: number; chunk: Buffer }[] = [];
  private queued = 0;
  private freeAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private ended = false;
  private bytesPerMs: number;

  constructor(
    private from: net.Socket,
    private to: net.Socket,
    mbps: number,
    private latencyMs: number,
    private queueBytes: number,
    private onDeliver: (n: number) => void,
  ) {
    this.bytesPerMs = (mbps * 1e6) / 8 / 1000;
    from.on('data', (data: Buffer) => this.push(data));
    from.on('end', () => {
      this.ended = true;
      this.flush();
    });
  }

  /** A new rate for chunks queued from now on. */
  setRate(mbps: number): void {
    this.bytesPerMs = (mbps * 1e6) / 8 / 1000;
  }

  private push(data: Buffer): void {
    const now = performance.now();
    for (let off = 0; off < data.length; off += SLICE_BYTES) {
      const chunk = data.subarray(off, Math.min(off + SLICE_BYTES, data.length));
      const start = Math.max(now, this.freeAt);
      this.freeAt = start + chunk.length / this.bytesPerMs;
      this.queue.push({ at: this.freeAt + this.latencyMs, chunk });
      this.queued += chunk.length;
    }
    if (this.queued > this.queueBytes) this.from.pause();
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.queue.length === 0) return;
    const wait = Math.max(0, this.queue[0]!.at - performance.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush();
    }, wait);
  }

  private flush(): void {
    const now = performance.now();
    while (this.queue.length && this.queue[0]!.at <= now + 0.5) {
      const { chunk } = this.queue.shift()!;
      this.queued -= chunk.length;
      if (!this.to.destroyed) this.to.write(chunk);
      this.onDeliver(chunk.length);
    }
    if (this.queued <= this.queueBytes / 2 && this.from.isPaused()) this.from.resume();
    if (this.queue.length) this.schedule();
    else if (this.ended && !this.to.destroyed) this.to.end();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queue = [];
  }
}

/** Starts a proxy giving whoever connects to it the link `opts` in front of `opts.target`. */
export async function startLinkEmulator(opts: LinkEmulatorOptions): Promise<LinkEmulator> {
  checkSpec(opts);
  const { host, port } = parseTarget(opts.target);
  const queueBytes = opts.queueBytes ?? 1024 * 1024;
  const delivered = { up: 0, down: 0 };
  const rates = { up: opts.upMbps, down: opts.downMbps };
  const live = new Set<{ destroy(): void; up: Pipe; down: Pipe }>();
  const server = net.createServer((client) => {
    client.setNoDelay(true);
    const upstream = net.connect({ host, port });
    upstream.setNoDelay(true);
    const up = new Pipe(client, upstream, rates.up, opts.latencyMs, queueBytes, (n) => (delivered.up += n));
    const down = new Pipe(upstream, client, rates.down, opts.latencyMs, queueBytes, (n) => (delivered.down += n));
    const conn = {
      up,
      down,
      destroy: () => {
        up.stop();
        down.stop();
        client.destroy();
        upstream.destroy();
        live.delete(conn);
      },
    };
    live.add(conn);
    // A reset on either side drops the whole connection, as a broken link does.
    client.on('error', conn.destroy);
    upstream.on('error', conn.destroy);
    // A clean end travels through the queue (Pipe ends its peer after the last byte); once both
    // sides are closed the connection is gone.
    let closed = 0;
    const onClose = () => void (++closed === 2 && conn.destroy());
    client.on('close', onClose);
    upstream.on('close', onClose);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, opts.listenHost ?? '127.0.0.1', () => resolve());
  });
  const p = (server.address() as AddressInfo).port;
  return {
    url: `http://${opts.listenHost ?? '127.0.0.1'}:${p}`,
    port: p,
    delivered,
    setRates: (upMbps, downMbps) => {
      checkSpec({ upMbps, downMbps, latencyMs: opts.latencyMs });
      rates.up = upMbps;
      rates.down = downMbps;
      for (const c of live) {
        c.up.setRate(upMbps);
        c.down.setRate(downMbps);
      }
    },
    close: async () => {
      for (const c of [...live]) c.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
