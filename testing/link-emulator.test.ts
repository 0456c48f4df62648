/**
 * The link emulator delivers what it is configured for: bandwidth per direction and one-way
 * latency, measured end to end through the proxy with one clock (both ends live in this process).
 */
import { describe, it, expect, afterEach } from 'vitest';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { startLinkEmulator, type LinkEmulator } from './link-emulator.js';
import { median } from '../bench/util.js';

let cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

/** A TCP server on a free port; `onConn` handles each connection. */
async function server(onConn: (s: net.Socket) => void): Promise<number> {
  const socks = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    socks.add(s);
    s.setNoDelay(true);
    onConn(s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  cleanup.push(() => {
    for (const s of socks) s.destroy();
    return new Promise<void>((r) => srv.close(() => r()));
  });
  return (srv.address() as AddressInfo).port;
}

async function connect(link: LinkEmulator): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port: link.port });
  s.setNoDelay(true);
  cleanup.push(() => void s.destroy());
  await new Promise<void>((r) => s.once('connect', () => r()));
  return s;
}

async function emulate(port: number, spec: { upMbps: number; downMbps: number; latencyMs: number }): Promise<LinkEmulator> {
  const link = await startLinkEmulator({ target: `127.0.0.1:${port}`, ...spec });
  cleanup.push(() => link.close());
  return link;
}

/**
 * Receiving side of a bulk transfer: rate from the first to the last chunk, excluding the
 * first chunk's bytes (it arrived at the start of the interval).
 */
function measureRate(s: net.Socket, total: number): Promise<{ mbps: number; firstAt: number }> {
  return new Promise((resolve) => {
    let got = 0;
    let first = 0;
    let firstBytes = 0;
    s.on('data', (d: Buffer) => {
      const now = performance.now();
      if (got === 0) {
        first = now;
        firstBytes = d.length;
      }
      got += d.length;
      if (got >= total) resolve({ mbps: ((got - firstBytes) * 8) / ((now - first) / 1000) / 1e6, firstAt: first });
    });
  });
}

describe('link emulator', () => {
  it('delivers the configured up and down bandwidth within 10%', async () => {
    const BYTES = 1_500_000;
    let serverSide: net.Socket | null = null;
    const port = await server((s) => (serverSide = s));
    const link = await emulate(port, { upMbps: 16, downMbps: 40, latencyMs: 20 });
    const client = await connect(link);
    // Up: the client sends, the server measures.
    await new Promise((r) => setTimeout(r, 50));
    const upDone = measureRate(serverSide!, BYTES);
    client.write(Buffer.alloc(BYTES, 1));
    const up = await upDone;
    // Down: the server sends, the client measures.
    const downDone = measureRate(client, BYTES);
    serverSide!.write(Buffer.alloc(BYTES, 2));
    const down = await downDone;
    console.log(`up ${up.mbps.toFixed(2)} Mbit/s, down ${down.mbps.toFixed(2)} Mbit/s`);
    expect(Math.abs(up.mbps - 16) / 16).toBeLessThan(0.1);
    expect(Math.abs(down.mbps - 40) / 40).toBeLessThan(0.1);
    expect(link.delivered).toEqual({ up: BYTES, down: BYTES });
  });

  it('adds the configured one-way latency in each direction within 10%', async () => {
    const LAT = 40;
    let serverSide: net.Socket | null = null;
    const port = await server((s) => {
      serverSide = s;
      s.on('data', (d) => s.write(d)); // echo
    });
    const link = await emulate(port, { upMbps: 100, downMbps: 100, latencyMs: LAT });
    const client = await connect(link);
    await new Promise((r) => setTimeout(r, 50));
    const oneWay: number[] = [];
    const rtt: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      const arrived = new Promise<number>((r) => serverSide!.once('data', () => r(performance.now())));
      const echoed = new Promise<number>((r) => client.once('data', () => r(performance.now())));
      client.write(Buffer.from([i]));
      oneWay.push((await arrived) - t0);
      rtt.push((await echoed) - t0);
    }
    console.log(`one-way ${median(oneWay).toFixed(1)} ms, rtt ${median(rtt).toFixed(1)} ms`);
    expect(Math.abs(median(oneWay) - LAT) / LAT).toBeLessThan(0.1);
    expect(Math.abs(median(rtt) - 2 * LAT) / (2 * LAT)).toBeLessThan(0.1);
  });

  it('setRates changes the rate of a live connection from then on', async () => {
    const BYTES = 1_000_000;
    let serverSide: net.Socket | null = null;
    const port = await server((s) => (serverSide = s));
    const link = await emulate(port, { upMbps: 1000, downMbps: 1000, latencyMs: 1 });
    const client = await connect(link);
    await new Promise((r) => setTimeout(r, 50));
    link.setRates(16, 40);
    const upDone = measureRate(serverSide!, BYTES);
    client.write(Buffer.alloc(BYTES, 1));
    const up = await upDone;
    expect(Math.abs(up.mbps - 16) / 16).toBeLessThan(0.1);
    expect(() => link.setRates(0, 1)).toThrow(/upMbps/);
  });

  it('rejects a nonsensical link', async () => {
    await expect(startLinkEmulator({ target: '127.0.0.1:1', upMbps: 0, downMbps: 1, latencyMs: 1 })).rejects.toThrow(/upMbps/);
    await expect(startLinkEmulator({ target: '127.0.0.1:1', upMbps: 1, downMbps: 1, latencyMs: -1 })).rejects.toThrow(/latencyMs/);
  });
});
