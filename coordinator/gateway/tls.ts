/**
 * HTTPS for the coordinator. Browsers expose WebGPU only to secure contexts, so a volunteer on
 * another machine needs https:// (localhost is the only exception).
 *
 * - `--tls-cert cert.pem --tls-key key.pem`: the operator's certificate (e.g. Let's Encrypt).
 * - `--tls self-signed`: a certificate made with Debian's `openssl` for this machine's names
 *   (hostname, localhost, every interface address, --host), kept in `<data-dir>/tls/` and reused
 *   while it is valid and covers the names, so its fingerprint stays the same across restarts.
 *   Volunteers' browsers warn about it; for LAN trials they check the printed SHA-256 fingerprint.
 *
 * With TLS on, the port still answers plain HTTP, with a redirect to https:// (the first byte of a
 * connection tells a TLS ClientHello, 0x16, from an HTTP request line); WebSocket upgrades over
 * plain HTTP are refused.
 */
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createHash, createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { isIP, type Socket } from 'node:net';
import { join } from 'node:path';
import { ConfigError } from '../../shared/model/config.js';

export interface TlsCredentials {
  /** PEM certificate (chain). */
  cert: string;
  /** PEM private key. */
  key: string;
}

export interface TlsSetup {
  credentials: TlsCredentials;
  /** SHA-256 fingerprint of the leaf certificate, colon-separated hex. */
  fingerprint: string;
  /** One line for the start-up banner. */
  description: string;
}

/** The leaf certificate's SHA-256 fingerprint (AB:CD:...). */
export function fingerprint(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

/**
 * Base64 SHA-256 of the certificate's public key (SPKI): what Chromium's
 * --ignore-certificate-errors-spki-list takes to trust exactly this certificate.
 */
export function spkiHash(certPem: string): string {
  return createHash('sha256').update(createPublicKey(certPem).export({ type: 'spki', format: 'der' })).digest('base64');
}

/** Checks that `cert` parses, is in its validity period and belongs to `key`. */
export function checkPair(creds: TlsCredentials, what: string): X509Certificate {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(creds.cert);
  } catch (e) {
    throw new ConfigError(`${what}: not a PEM certificate (${(e as Error).message})`);
  }
  let key;
  try {
    key = createPrivateKey(creds.key);
  } catch (e) {
    throw new ConfigError(`${what}: not a PEM private key (${(e as Error).message})`);
  }
  if (!cert.checkPrivateKey(key)) throw new ConfigError(`${what}: the private key does not belong to the certificate`);
  const now = Date.now();
  if (Date.parse(cert.validTo) < now) throw new ConfigError(`${what}: the certificate expired on ${cert.validTo}`);
  if (Date.parse(cert.validFrom) > now) throw new ConfigError(`${what}: the certificate is not valid before ${cert.validFrom}`);
  return cert;
}

/** The operator's certificate and key from PEM files. */
export function loadPemPair(certPath: string, keyPath: string): TlsCredentials {
  const read = (p: string, what: string) => {
    try {
      return readFileSync(p, 'utf8');
    } catch (e) {
      throw new ConfigError(`cannot read ${what} ${p}: ${(e as Error).message}`);
    }
  };
  const creds = { cert: read(certPath, '--tls-cert'), key: read(keyPath, '--tls-key') };
  checkPair(creds, `--tls-cert ${certPath}`);
  return creds;
}

/** The names a volunteer may use for this machine: hostname, localhost, interface addresses, the bind address. */
export function machineNames(host?: string): { dns: string[]; ips: string[] } {
  const dns = new Set<string>(['localhost']);
  const ips = new Set<string>(['127.0.0.1', '::1']);
  const h = hostname();
  if (/^[a-zA-Z0-9.-]{1,253}$/.test(h)) dns.add(h);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) ips.add(a.address.replace(/%.*$/, ''));
  if (host && host !== '0.0.0.0' && host !== '::') (isIP(host) ? ips : dns).add(host);
  return { dns: [...dns].sort(), ips: [...ips].sort() };
}

/** Whether `cert` names every one of `names` in its subjectAltName. */
function coversNames(cert: X509Certificate, names: { dns: string[]; ips: string[] }): boolean {
  const san = (cert.subjectAltName ?? '').split(/,\s*/);
  const has = new Set(san);
  // Node prints IPv6 addresses in their full form; compare IPv4 and DNS names exactly.
  return names.dns.every((n) => has.has(`DNS:${n}`)) && names.ips.filter((ip) => isIP(ip) === 4).every((ip) => has.has(`IP Address:${ip}`));
}

/**
 * A self-signed certificate for these names, made with `openssl` (P-256, 90 days) in `dir`, or
 * the one already there when it is valid for another day and covers the names.
 */
export function selfSignedCertificate(dir: string, names: { dns: string[]; ips: string[] }): TlsCredentials & { reused: boolean } {
  const certPath = join(dir, 'self-signed.crt');
  const keyPath = join(dir, 'self-signed.key');
  if (existsSync(certPath) && existsSync(keyPath)) {
    const creds = { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
    try {
      const cert = checkPair(creds, certPath);
      if (Date.parse(cert.validTo) > Date.now() + 86_400_000 && coversNames(cert, names)) return { ...creds, reused: true };
    } catch {
      // unusable: make a new one below
    }
  }
  mkdirSync(dir, { recursive: true });
  const san = [...names.dns.map((n) => `DNS:${n}`), ...names.ips.map((ip) => `IP:${ip}`)].join(',');
  try {
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '90',
        '-subj', `/CN=${names.dns.find((n) => n !== 'localhost') ?? 'localhost'}/O=volunteer swarm (self-signed)`,
        '-addext', `subjectAltName=${san}`,
        '-addext', 'basicConstraints=critical,CA:FALSE',
        '-addext', 'extendedKeyUsage=serverAuth',
        '-keyout', keyPath, '-out', certPath,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === 'ENOENT') throw new ConfigError('--tls self-signed needs the openssl command (Debian: apt-get install openssl)');
    throw new ConfigError(`openssl could not make a certificate: ${String(err.stderr ?? err.message).trim()}`);
  }
  chmodSync(keyPath, 0o600);
  const creds = { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8') };
  checkPair(creds, certPath);
  return { ...creds, reused: false };
}

/** What the tls flags ask for; null = plain HTTP. */
export async function tlsFromSettings(o: { tls?: string; cert?: string; key?: string; host: string; dir: string }): Promise<TlsSetup | null> {
  if (o.tls && (o.cert || o.key)) throw new ConfigError('use either --tls self-signed or --tls-cert/--tls-key, not both');
  if (!o.tls && !o.cert && !o.key) return null;
  if (o.tls === 'self-signed') {
    const names = machineNames(o.host);
    const c = selfSignedCertificate(o.dir, names);
    const credentials = { cert: c.cert, key: c.key };
    writeFileSync(join(o.dir, 'fingerprint.txt'), fingerprint(c.cert) + '\n');
    return {
      credentials,
      fingerprint: fingerprint(c.cert),
      description: `self-signed certificate ${c.reused ? 'reused from' : 'made in'} ${o.dir} for ${[...names.dns, ...names.ips].join(', ')} (browsers warn: compare the fingerprint)`,
    };
  }
  if (!o.cert || !o.key) throw new ConfigError('--tls-cert and --tls-key go together');
  const credentials = loadPemPair(o.cert, o.key);
  const subject = new X509Certificate(credentials.cert).subjectAltName ?? new X509Certificate(credentials.cert).subject;
  return { credentials, fingerprint: fingerprint(credentials.cert), description: `certificate ${o.cert} (${subject})` };
}

/** A Host header we are willing to echo into a redirect: a name or address with an optional port. */
const HOST_HEADER = /^(\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9.-]{1,253})(:\d{1,5})?$/;

/** Plain HTTP on the HTTPS port: a redirect to the same path over https://. */
function redirectToHttps(req: IncomingMessage, res: ServerResponse): void {
  const host = req.headers.host ?? '';
  const path = req.url ?? '/';
  if (!HOST_HEADER.test(host) || !path.startsWith('/')) {
    res.writeHead(400, { 'content-type': 'text/plain', connection: 'close' }).end('this port serves HTTPS\n');
    return;
  }
  // Connection: close, so no keep-alive socket of the plain side holds up the server's close().
  res.writeHead(308, { location: `https://${host}${path}`, 'content-type': 'text/plain', connection: 'close' }).end('this port serves HTTPS\n');
}

/**
 * An HTTPS server for `handler` whose port also answers plain HTTP with a redirect to https://.
 * socket.io attaches to it as to a plain http.Server.
 */
export function createSecureServer(creds: TlsCredentials, handler: (req: IncomingMessage, res: ServerResponse) => void): HttpsServer {
  const server = createHttpsServer({ cert: creds.cert, key: creds.key }, handler);
  const plain = createHttpServer(redirectToHttps);
  plain.on('upgrade', (_req, socket: Socket) => socket.end('HTTP/1.1 426 Upgrade Required\r\nUpgrade: TLS/1.2, HTTP/1.1\r\nConnection: close\r\n\r\n'));
  // tls.Server handles raw connections in its 'connection' listener: put a first-byte check in front.
  const tlsListeners = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    socket.once('data', (first: Buffer) => {
      socket.pause();
      socket.unshift(first);
      if (first[0] === 0x16) for (const l of tlsListeners) l.call(server, socket);
      else if (first[0]! > 0x20 && first[0]! < 0x7f) plain.emit('connection', socket);
      else socket.destroy();
      process.nextTick(() => socket.resume());
    });
    socket.on('error', () => socket.destroy());
  });
  return server;
}
