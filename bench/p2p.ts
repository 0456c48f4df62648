/**
 * Peer-to-peer benchmark (issue 23): frame latency and throughput of one PeerLink (WebRTC data
 * channel, node-datachannel, loopback host candidates) next to a socket.io relay doing nothing but
 * forwarding each binary frame from tab A to tab B (the hop shape of today's coordinator relay:
 * two socket.io legs through one server event loop; the coordinator's checks are measured by
 * bench:relay, and a p2p receiver runs the same checks, so neither path includes them here).
 *
 *   npm run bench:p2p                      (64 KiB and 1 MiB frames; ~1 minute)
 *   npm run bench:p2p -- --sizes 64k --n 200
 *
 * The relay server runs in a child process (its own event loop, as the coordinator has); both
 * ends of every pair run here so one clock times a frame end to end. Latency: one frame in flight,
 * p50/p99 from send at A to the complete frame at B. Throughput: `--window` frames in flight
 * (default 2, the coordinator's depth with 2 stages); MB = 10^6 bytes of frame.
 * On loopback there is no network to save: this measures the transports' own overhead, not the
 * issue's targets (link emulation: bench:links).
 */
import { fork } from 'node:child_process';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { io as ioClient, type Socket as ClientSocket } from 'socket.io-client';
import { peerPair } from '../testing/peer-pair.js';
import type { LinkDownError } from '../shared/transport/link-down-error.js';
import { flags, fmt, list, machine, median, percentile, table, fmtBytes } from './util.js';

interface Pair {
  send(i: number, frame: Uint8Array): void;
  onRecv: (i: number) => void;
  close(): void;
}

const SIZES: Record<string, number> = { '64k': 64 * 1024, '1m': 1024 * 1024 };

async function serverMain(): Promise<void> {
  const http = createServer();
  const io = new Server(http, { maxHttpBufferSize: 16 * 1024 * 1024 });
  io.on('connection', (s) => {
    const role = (s.handshake.auth as { role?: string }).role ?? '';
    void s.join(role);
    s.on('frame', (frame: Buffer) => {
      if (!(frame instanceof Uint8Array)) return;
      io.to(role === 'A' ? 'B' : 'A').emit('frame', frame);
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  process.send!({ port: (http.address() as AddressInfo).port });
}

async function relayPair(port: number): Promise<Pair> {
  const open = (role: string) =>
    new Promise<ClientSocket>((resolve, reject) => {
      const s = ioClient(`http://127.0.0.1:${port}`, { transports: ['websocket'], forceNew: true, reconnection: false, auth: { role } });
      s.once('connect', () => resolve(s));
      s.once('connect_error', reject);
    });
  const b = await open('B');
  const a = await open('A');
  const pair: Pair = { send: (_i, f) => a.emit('frame', f), onRecv: () => {}, close: () => (a.close(), b.close()) };
  b.on('frame', (buf: Buffer) => pair.onRecv(buf.readUInt32LE(0)));
  return pair;
}

async function p2pPair(): Promise<Pair> {
  const pair: Pair = { send: () => {}, onRecv: () => {}, close: () => {} };
  const [a] = peerPair('A', 'B', { onFrame: (_to, _from, f) => pair.onRecv(new DataView(f.buffer, f.byteOffset).getUint32(0, true)) });
  await a.links.send('B', new Uint8Array(16)); // open the link before timing
  // A frame counts when B has it; its acknowledgement may still be on the way when the pair closes.
  pair.send = (_i, f) => void a.links.send('B', f).catch((e: LinkDownError) => e.failure === 'closed' || console.error(e.message));
  pair.close = () => a.links.closeAll();
  return pair;
}

/** n frames, at most `window` in flight: per-frame latency and throughput over the phase. */
function drive(pair: Pair, bytes: number, n: number, window: number): Promise<{ lat: number[]; mbps: number }> {
  return new Promise((resolve) => {
    const sentAt = new Float64Array(n);
    const lat: number[] = [];
    let next = 0;
    const t0 = performance.now();
    const sendOne = () => {
      const f = new Uint8Array(bytes);
      new DataView(f.buffer).setUint32(0, next, true);
      sentAt[next] = performance.now();
      pair.send(next++, f);
    };
    pair.onRecv = (i) => {
      lat.push(performance.now() - sentAt[i]);
      if (lat.length === n) return resolve({ lat, mbps: (n * bytes) / 1e6 / ((performance.now() - t0) / 1000) });
      if (next < n) sendOne();
    };
    for (let k = 0; k < Math.min(window, n); k++) sendOne();
  });
}

async function main(): Promise<void> {
  const args = flags(process.argv.slice(2), { sizes: 'string', n: 'string', window: 'string' });
  const sizes = list(args.sizes, ['64k', '1m']);
  const window = Number(args.window ?? 2);
  const child = fork(fileURLToPath(import.meta.url), ['--server'], { execArgv: process.execArgv, stdio: 'inherit' });
  const port = await new Promise<number>((r) => child.once('message', (m: { port: number }) => r(m.port)));
  const rows: (string | number)[][] = [];
  try {
    for (const key of sizes) {
      const bytes = SIZES[key];
      if (!bytes) throw new Error(`--sizes: ${key} is not one of ${Object.keys(SIZES).join(', ')}`);
      const n = Number(args.n ?? (bytes >= 1024 * 1024 ? 150 : 800));
      // Alternate the paths so a burst of other load on the machine hits both.
      for (const [name, make] of [['sio-relay', () => relayPair(port)], ['p2p', p2pPair], ['sio-relay', () => relayPair(port)], ['p2p', p2pPair]] as const) {
        const pair = await make();
        await drive(pair, bytes, Math.ceil(n / 10), 1); // warm-up
        const one = await drive(pair, bytes, Math.ceil(n / 2), 1);
        const many = await drive(pair, bytes, n, window);
        pair.close();
        rows.push([name, fmtBytes(bytes), fmt(median(one.lat)), fmt(percentile(one.lat, 99)), fmt(one.mbps, 1), fmt(many.mbps, 1)]);
      }
    }
  } finally {
    child.kill();
  }
  console.log(machine());
  console.log(table(['path', 'frame', 'p50 ms', 'p99 ms', 'MB/s (1 in flight)', `MB/s (${window} in flight)`], rows));
  process.exit(0);
}

if (process.argv.includes('--server')) void serverMain();
else void main();
