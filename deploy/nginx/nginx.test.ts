/**
 * deploy/nginx/swarm.conf in a real nginx (Debian's, installed by scripts/ensure-packages.sh): TLS
 * at nginx on 127.0.0.2, the coordinator behind it with --trust-proxy. Volunteers (Node, from
 * 127.0.0.3) train through the proxied WebSocket upgrade, the dashboard's page and its operator
 * socket come through, plain HTTP is redirected, /metrics is not exposed, and the coordinator logs
 * the volunteers' own address from X-Forwarded-For.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { io as ioClient, type Socket } from 'socket.io-client';
import { Coordinator, DEFAULT_COORDINATOR } from '../../coordinator/server.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../../shared/run-settings.js';
import { selfSignedCertificate } from '../../coordinator/gateway/tls.js';
import { startNodeVolunteer, type NodeVolunteer } from '../../testing/node-volunteer.js';
import { until } from '../../testing/until.js';
import { freePort, requireCommand, stopProcess, substitute } from '../harness.js';

const CONF = new URL('./swarm.conf', import.meta.url);
const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 2, microbatches: 2, batch: 1, seqLen: 16, recovery: 'checkfree' };

let dir = '';
let nginx: ChildProcess | null = null;
let coord: Coordinator | null = null;
const vols: NodeVolunteer[] = [];
let nginxLog = '';



function fetchText(url: string, ca: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; location?: string }> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(url, { ca, headers, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), location: res.headers.location }));
    });
    req.on('error', reject);
    req.end();
  });
}

let base = '';
let httpBase = '';
let ca = '';

beforeAll(async () => {
  const bin = requireCommand('nginx', 'nginx');
  dir = mkdtempSync(join(tmpdir(), 'swarm-nginx-'));
  const clientDir = join(dir, 'client');
  mkdirSync(clientDir);
  writeFileSync(join(clientDir, 'dashboard.html'), '<!doctype html><title>dashboard</title><div id="root" data-page="dashboard"></div>');
  coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, evalEvery: 0, maxIterations: 2, trustProxy: true, publicHosts: ['127.0.0.2'], clientDir, sampleEverySeconds: 0 });
  const coordPort = Number(new URL(await coord.listen()).port);
  const cert = selfSignedCertificate(join(dir, 'tls'), { dns: ['localhost'], ips: ['127.0.0.2'] });
  ca = cert.cert;
  const [tlsPort, httpPort] = [await freePort('127.0.0.2'), await freePort('127.0.0.2')];
  let site = readFileSync(CONF, 'utf8');
  site = substitute('deploy/nginx/swarm.conf', site, 'server 127.0.0.1:8080;', `server 127.0.0.1:${coordPort};`);
  site = substitute('deploy/nginx/swarm.conf', site, '    listen 80;\n', `    listen 127.0.0.2:${httpPort};\n`);
  site = substitute('deploy/nginx/swarm.conf', site, '    listen [::]:80;\n', '');
  site = substitute('deploy/nginx/swarm.conf', site, '    listen 443 ssl;\n', `    listen 127.0.0.2:${tlsPort} ssl;\n`);
  site = substitute('deploy/nginx/swarm.conf', site, '    listen [::]:443 ssl;\n', '');
  site = substitute('deploy/nginx/swarm.conf', site, '/etc/letsencrypt/live/swarm.example.org/fullchain.pem', join(dir, 'tls/self-signed.crt'));
  site = substitute('deploy/nginx/swarm.conf', site, '/etc/letsencrypt/live/swarm.example.org/privkey.pem', join(dir, 'tls/self-signed.key'));
  writeFileSync(join(dir, 'swarm.conf'), site);
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${join(dir, t)};`).join('\n  ');
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes 1;\npid ${join(dir, 'nginx.pid')};\nerror_log ${join(dir, 'error.log')} info;\ndaemon off;\n` +
      `events { worker_connections 256; }\nhttp {\n  access_log ${join(dir, 'access.log')};\n  ${temp}\n  include ${join(dir, 'swarm.conf')};\n}\n`,
  );
  execFileSync(bin, ['-t', '-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], { stdio: 'pipe' });
  nginx = spawn(bin, ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  nginx.stderr!.on('data', (c: Buffer) => (nginxLog += c.toString()));
  base = `https://127.0.0.2:${tlsPort}`;
  httpBase = `http://127.0.0.2:${httpPort}`;
  const t0 = Date.now();
  for (;;) {
    if (nginx.exitCode !== null) throw new Error(`nginx exited (${nginx.exitCode}): ${nginxLog}`);
    const ok = await fetchText(`${base}/healthz`, ca).then((r) => r.status === 200, () => false);
    if (ok) break;
    if (Date.now() - t0 > 15_000) throw new Error(`nginx did not answer within 15 s: ${nginxLog}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}, 60_000);

afterAll(async () => {
  for (const v of vols) v.kill();
  await stopProcess(nginx);
  await coord?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('nginx in front of the coordinator (deploy/nginx/swarm.conf)', () => {
  it('proxies pages and redirects plain HTTP, but not /metrics', async () => {
    const dash = await fetchText(`${base}/dashboard`, ca);
    expect(dash.status).toBe(200);
    expect(dash.body).toContain('data-page="dashboard"');
    expect((await fetchText(`${base}/metrics`, ca)).status).toBe(404);
    const plain = await fetchText(`${httpBase}/dashboard`, ca);
    expect(plain.status).toBe(301);
    expect(plain.location).toBe(`https://127.0.0.2/dashboard`);
  });

  it('runs a swarm over the proxied WebSocket upgrade; the dashboard socket sees it; addresses come from X-Forwarded-For', async () => {
    for (let i = 0; i < 2; i++) vols.push(await startNodeVolunteer(base, { name: `nginx${i}`, socketOptions: { ca, localAddress: '127.0.0.3' } }));
    await until(() => coord!.scheduler.iteration >= 2, '2 iterations through nginx', 90_000);
    expect(coord!.scheduler.history.every((h) => Number.isFinite(h.trainLoss))).toBe(true);
    // Every volunteer's transport really is a WebSocket through the proxy.
    for (const v of vols) expect(v.socket.io.engine.transport.name).toBe('websocket');
    const joins = coord!.events.list('join');
    expect(joins.length).toBeGreaterThanOrEqual(2);
    for (const j of joins) expect(j.data?.address).toBe('127.0.0.3');
    // The dashboard's operator socket, through nginx (Origin as a browser on the proxy's address sends it).
    const op: Socket = ioClient(`${base}/operator`, { transports: ['websocket'], auth: { token: coord!.operatorToken }, ca, extraHeaders: { origin: base }, forceNew: true, reconnection: false });
    try {
      const snap = await new Promise<{ iteration?: number }>((resolve, reject) => {
        op.once('swarm', resolve);
        op.once('connect_error', reject);
      });
      expect(snap).toBeTruthy();
    } finally {
      op.close();
    }
  });
});
