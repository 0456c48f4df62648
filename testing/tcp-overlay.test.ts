import { describe, it, expect, afterEach } from 'vitest';
import { execFileSync, execFile } from 'node:child_process';
import net from 'node:net';
import { createNetnsLinks, type NetnsLinks } from './netns-links.js';
import { createTcpOverlay, type TcpOverlay, type TcpOverlayOptions } from './tcp-overlay.js';

/** Root, iproute2 and VXLAN in the kernel: what the overlay needs (probed with a throwaway device). */
function vxlanUsable(): boolean {
  if (process.getuid?.() !== 0) return false;
  const name = `pbprobe${process.pid % 10000}`;
  try {
    execFileSync('ip', ['link', 'add', name, 'type', 'vxlan', 'id', '42', 'dstport', '0', 'dev', 'lo'], { stdio: 'ignore' });
    execFileSync('ip', ['link', 'del', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const usable = vxlanUsable();
if (!usable) console.warn('tcp-overlay.test.ts skipped: needs root, iproute2 and a kernel with vxlan');

const DELAY_MS = 25;
const MBPS = 20;
const BULK = 4 * 1024 * 1024;

/**
 * Runs in the namespace: 10 one-byte round trips to the echo port, then BULK bytes up to the sink
 * port, then BULK bytes down from the source port; prints the round trips (ms) and the downlink's
 * rate after its first quarter (Mbit/s).
 */
const CLIENT = `
const net = require('node:net');
const [host, echo, sink, source, bulk] = process.argv.slice(1);
const connect = (port) => new Promise((r) => { const s = net.connect({ host, port: Number(port) }, () => r(s)); s.setNoDelay(true); });
(async () => {
  const e = await connect(echo);
  const rtts = [];
  for (let i = 0; i < 10; i++) {
    const t = performance.now();
    await new Promise((r) => { e.once('data', r); e.write('p'); });
    rtts.push(performance.now() - t);
  }
  e.end();
  const up = await connect(sink);
  await new Promise((r) => up.end(Buffer.alloc(Number(bulk)), r));
  const down = await connect(source);
  let got = 0, quarter = 0, last = 0;
  down.on('data', (c) => { got += c.length; last = performance.now(); if (!quarter && got >= Number(bulk) / 4) quarter = last; });
  await new Promise((r) => down.on('end', r));
  console.log(JSON.stringify({ rtts, downMbps: ((got - Number(bulk) / 4) * 8) / ((last - quarter) * 1000) }));
})();
`;

let links: NetnsLinks | null = null;
let overlay: TcpOverlay | null = null;
const servers: net.Server[] = [];
const sockets: net.Socket[] = [];
async function cleanUp(): Promise<void> {
  // The server's ends of the connections too: a half-closed socket would keep the path (and the pid-named devices) alive.
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
  await overlay?.remove();
  overlay = null;
  links?.remove();
  links = null;
}
afterEach(cleanUp);

async function listen(host: string, onConn: (s: net.Socket) => void): Promise<number> {
  const server = net.createServer((s) => {
    sockets.push(s);
    onConn(s);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  return (server.address() as net.AddressInfo).port;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/** One namespace behind MBPS links and the overlay: its round trips to the server, and `bulk` bytes up then down (Mbit/s after the first quarter). */
async function measure(opts: TcpOverlayOptions, bulk: number): Promise<{ rtts: number[]; upMbps: number; downMbps: number; upBytes: number }> {
  links = createNetnsLinks(1, { upMbps: MBPS, downMbps: MBPS });
  overlay = await createTcpOverlay(links, opts);
  const host = overlay.hostIp;
  const echo = await listen(host, (s) => {
    s.setNoDelay(true);
    s.on('data', (d) => s.write(d));
  });
  // The uplink's rate, measured at the receiving end after its first quarter (slow start).
  const up = { got: 0, quarter: 0, last: 0 };
  const sink = await listen(host, (s) =>
    s.on('data', (c) => {
      up.got += c.length;
      up.last = performance.now();
      if (!up.quarter && up.got >= bulk / 4) up.quarter = up.last;
    }),
  );
  const source = await listen(host, (s) => s.end(Buffer.alloc(bulk)));
  const out = await new Promise<string>((resolve, reject) =>
    execFile('ip', ['netns', 'exec', links!.namespaces[0]!, process.execPath, '-e', CLIENT, host, String(echo), String(sink), String(source), String(bulk)], { timeout: 30_000 }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    ),
  );
  const { rtts, downMbps } = JSON.parse(out) as { rtts: number[]; downMbps: number };
  const upMbps = ((up.got - bulk / 4) * 8) / ((up.last - up.quarter) * 1000);
  console.log(JSON.stringify({ serverMbps: opts.serverMbps ?? null, rtts: rtts.map(Math.round), upMbps, downMbps }));
  return { rtts, upMbps, downMbps, upBytes: up.got };
}

/** Payload rate: tbf counts the encapsulated packet (1514 bytes on the veth for 1398 of payload), so ~0.92 of the rate. */
function expectRate(mbps: number, rate: number): void {
  expect(mbps).toBeGreaterThan(rate * 0.75);
  expect(mbps).toBeLessThan(rate);
}

describe.skipIf(!usable)('createTcpOverlay', () => {
  it('gives TCP from a namespace the round trip of the delay both ways and the rate of the tbf links', async () => {
    const { rtts, upMbps, downMbps, upBytes } = await measure({ delayMs: DELAY_MS }, BULK);
    expect(upBytes).toBe(BULK);
    // One round trip: the delay each way (the links' serialisation of a small packet is ~0.1 ms).
    expect(median(rtts)).toBeGreaterThan(2 * DELAY_MS * 0.9);
    expect(median(rtts)).toBeLessThan(2 * DELAY_MS * 1.2);
    for (const mbps of [upMbps, downMbps]) expectRate(mbps, MBPS);
    const bytes = overlay!.bytes();
    expect(bytes.up).toBeGreaterThan(BULK);
    expect(bytes.down).toBeGreaterThan(BULK);
  });

  it('serverMbps below the links\' rate shapes the server\'s side both ways', async () => {
    const serverMbps = 8;
    const { rtts, upMbps, downMbps, upBytes } = await measure({ delayMs: DELAY_MS, serverMbps }, BULK / 2);
    expect(upBytes).toBe(BULK / 2);
    expect(median(rtts)).toBeLessThan(2 * DELAY_MS * 1.2);
    for (const mbps of [upMbps, downMbps]) expectRate(mbps, serverMbps);
  });
});
