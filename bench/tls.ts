/**
 * What built-in HTTPS costs the relay: binary frames echoed through a socket.io server on a plain
 * HTTP server and on the coordinator's TLS server (coordinator/tls.ts, self-signed P-256), side by
 * side in alternating rounds, the same client options as the volunteers (websocket transport).
 *
 *   npm run bench:tls                 (64 KiB and 1 MiB frames, 3 rounds each)
 *   npm run bench:tls -- --quick      (fewer messages)
 *
 * Figures: round-trip throughput with 4 frames in flight (MB = 10^6 bytes each way) and p50
 * round-trip latency with one frame in flight; the ratio is TLS / plain.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { Server } from 'socket.io';
import { io as ioClient, type Socket } from 'socket.io-client';
import { createSecureServer, machineNames, selfSignedCertificate } from '../coordinator/gateway/tls.js';
import { MAX_SOCKET_BYTES } from '../shared/protocol/events.js';

const { values: args } = parseArgs({ options: { quick: { type: 'boolean' } } });
const ROUNDS = 3;
const SIZES = [64 * 1024, 1024 * 1024];
const MESSAGES = (size: number) => Math.max(20, Math.round(((args.quick ? 64 : 256) * 1024 * 1024) / size / 4));

interface Endpoint {
  url: string;
  close(): Promise<void>;
  ca?: string;
}

async function echoServer(http: HttpServer, scheme: 'http' | 'https', ca?: string): Promise<Endpoint> {
  const io = new Server(http, { maxHttpBufferSize: MAX_SOCKET_BYTES });
  io.on('connection', (s) => s.on('frame', (b: Buffer, ack: (b: Buffer) => void) => ack(b)));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const port = (http.address() as AddressInfo).port;
  return { url: `${scheme}://localhost:${port}`, ca, close: () => new Promise((r) => io.close(() => r())) };
}

async function connect(e: Endpoint): Promise<Socket> {
  const s = ioClient(e.url, { transports: ['websocket'], forceNew: true, reconnection: false, ...(e.ca ? { ca: e.ca } : {}) });
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('connect_error', reject);
  });
  return s;
}

function send(s: Socket, frame: Buffer): Promise<void> {
  return new Promise((resolve) => s.emit('frame', frame, () => resolve()));
}

async function measure(e: Endpoint, size: number): Promise<{ mbps: number; p50: number }> {
  const s = await connect(e);
  const frame = Buffer.alloc(size, 7);
  const n = MESSAGES(size);
  try {
    for (let i = 0; i < 5; i++) await send(s, frame); // warm-up
    const lat: number[] = [];
    for (let i = 0; i < Math.min(n, 100); i++) {
      const t0 = performance.now();
      await send(s, frame);
      lat.push(performance.now() - t0);
    }
    lat.sort((a, b) => a - b);
    const t0 = performance.now();
    let sent = 0;
    const worker = async () => {
      while (sent < n) {
        sent++;
        await send(s, frame);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    const sec = (performance.now() - t0) / 1000;
    return { mbps: (n * size) / 1e6 / sec, p50: lat[lat.length >> 1]! };
  } finally {
    s.close();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-tls-'));
  const cert = selfSignedCertificate(dir, machineNames());
  const plain = await echoServer(createServer(), 'http');
  const tls = await echoServer(createSecureServer(cert, () => {}), 'https', cert.cert);
  try {
    console.log(`socket.io echo, websocket transport, ${ROUNDS} alternating rounds; medians (MB = 10^6 bytes one way)`);
    console.log('frame      plain MB/s   TLS MB/s   ratio   plain p50 ms   TLS p50 ms   ratio');
    for (const size of SIZES) {
      const r = { plain: [] as { mbps: number; p50: number }[], tls: [] as { mbps: number; p50: number }[] };
      for (let i = 0; i < ROUNDS; i++) {
        r.plain.push(await measure(plain, size));
        r.tls.push(await measure(tls, size));
      }
      const pm = median(r.plain.map((x) => x.mbps));
      const tm = median(r.tls.map((x) => x.mbps));
      const pl = median(r.plain.map((x) => x.p50));
      const tl = median(r.tls.map((x) => x.p50));
      const label = size >= 1024 * 1024 ? `${size / 1024 / 1024} MiB` : `${size / 1024} KiB`;
      console.log(
        `${label.padEnd(9)}  ${pm.toFixed(1).padStart(10)}  ${tm.toFixed(1).padStart(9)}  ${(tm / pm).toFixed(2).padStart(6)}  ${pl.toFixed(2).padStart(13)}  ${tl.toFixed(2).padStart(11)}  ${(tl / pl).toFixed(2).padStart(6)}`,
      );
    }
  } finally {
    await plain.close();
    await tls.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

void main().then(() => process.exit(0), (e: unknown) => {
  console.error(e);
  process.exit(1);
});
