/** HTTPS in the coordinator (self-signed and PEM pairs, HTTP redirected) and --trust-proxy's client address. */
import { describe, it, expect, afterEach } from 'vitest';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { DEFAULT_SETTINGS } from '../../shared/run-settings.js';
import { checkPair, fingerprint, loadPemPair, machineNames, selfSignedCertificate, tlsFromSettings } from './tls.js';
import { clientAddress } from './client-address.js';
import { startNodeVolunteer, type NodeVolunteer } from '../../testing/node-volunteer.js';
import { until } from '../../testing/until.js';

let coord: Coordinator | null = null;
let vol: NodeVolunteer | null = null;
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'swarm-tls-'));
  dirs.push(d);
  return d;
};

afterEach(async () => {
  vol?.kill();
  vol = null;
  await coord?.close();
  coord = null;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function get(url: string, ca?: string): Promise<{ status: number; headers: Record<string, unknown>; body: string; fingerprint?: string }> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? httpsRequest : httpRequest)(url, { ca, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      const fp = url.startsWith('https:') ? (res.socket as TLSSocket).getPeerCertificate().fingerprint256 : undefined;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), fingerprint: fp }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('TLS', () => {
  it('makes a self-signed certificate for the machine\'s names once, and reuses it', () => {
    const dir = tempDir();
    const names = machineNames('127.0.0.2');
    expect(names.ips).toEqual(expect.arrayContaining(['127.0.0.1', '127.0.0.2']));
    expect(names.dns).toContain('localhost');
    const a = selfSignedCertificate(dir, names);
    expect(a.reused).toBe(false);
    const cert = checkPair(a, 'made');
    expect(cert.subjectAltName).toContain('IP Address:127.0.0.2');
    expect(cert.subjectAltName).toContain('DNS:localhost');
    const b = selfSignedCertificate(dir, names);
    expect(b.reused).toBe(true);
    expect(fingerprint(b.cert)).toBe(fingerprint(a.cert));
    // A name the certificate lacks makes a new one.
    const c = selfSignedCertificate(dir, { ...names, dns: [...names.dns, 'swarm.example'] });
    expect(c.reused).toBe(false);
    expect(fingerprint(c.cert)).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  it('refuses a key that is not the certificate\'s, and half a pair', async () => {
    const dir = tempDir();
    const a = selfSignedCertificate(join(dir, 'a'), machineNames());
    const b = selfSignedCertificate(join(dir, 'b'), { dns: ['other'], ips: [] });
    writeFileSync(join(dir, 'a.crt'), a.cert);
    writeFileSync(join(dir, 'b.key'), b.key);
    expect(() => loadPemPair(join(dir, 'a.crt'), join(dir, 'b.key'))).toThrow(/does not belong/);
    expect(() => loadPemPair(join(dir, 'b.key'), join(dir, 'b.key'))).toThrow(/not a PEM certificate/);
    await expect(tlsFromSettings({ cert: join(dir, 'a.crt'), host: '127.0.0.1', dir })).rejects.toThrow(/go together/);
    await expect(tlsFromSettings({ tls: 'self-signed', cert: join(dir, 'a.crt'), host: '127.0.0.1', dir })).rejects.toThrow(/either/);
  });

  it('serves HTTPS with the certificate, redirects plain HTTP, and volunteers join over wss', async () => {
    const dir = tempDir();
    const setup = await tlsFromSettings({ tls: 'self-signed', host: '127.0.0.1', dir });
    expect(setup).not.toBeNull();
    coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings: { ...DEFAULT_SETTINGS, stages: 2 }, port: 0, silent: true, tls: setup!.credentials, sampleEverySeconds: 0 });
    const url = await coord.listen();
    expect(url).toMatch(/^https:\/\/localhost:\d+$/);
    const port = new URL(url).port;
    const ok = await get(`https://127.0.0.1:${port}/healthz`, setup!.credentials.cert);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ ok: true });
    expect(ok.fingerprint).toBe(setup!.fingerprint);
    // Without trusting the certificate, the TLS client refuses it (it is self-signed).
    await expect(get(`https://127.0.0.1:${port}/healthz`)).rejects.toThrow(/self.signed/i);
    const plain = await get(`http://127.0.0.1:${port}/dashboard?x=1`);
    expect(plain.status).toBe(308);
    expect(plain.headers.location).toBe(`https://127.0.0.1:${port}/dashboard?x=1`);
    vol = await startNodeVolunteer(`https://localhost:${port}`, { socketOptions: { ca: setup!.credentials.cert } });
    await until(() => coord!.registry.all().length === 1, 'the volunteer to join over wss', 30_000);
  });
});

describe('client address', () => {
  const req = (remoteAddress: string, xff?: string | string[]) => ({ socket: { remoteAddress }, headers: xff === undefined ? {} : { 'x-forwarded-for': xff } });
  it('is the peer without --trust-proxy, whatever X-Forwarded-For says', () => {
    expect(clientAddress(req('::ffff:10.0.0.5', '203.0.113.9'), false)).toBe('10.0.0.5');
  });
  it('is the entry the proxy appended (the last) with --trust-proxy', () => {
    expect(clientAddress(req('127.0.0.1', '198.51.100.1, 203.0.113.9'), true)).toBe('203.0.113.9');
    expect(clientAddress(req('127.0.0.1', ['198.51.100.1', '2001:db8::1']), true)).toBe('2001:db8::1');
    expect(clientAddress(req('127.0.0.1', 'not-an-address'), true)).toBe('127.0.0.1');
    expect(clientAddress(req('127.0.0.1', 'x'.repeat(5000)), true)).toBe('127.0.0.1');
    expect(clientAddress(req('127.0.0.1'), true)).toBe('127.0.0.1');
  });
});
