/**
 * Which `Host` headers the coordinator answers (DNS-rebinding defence). A page on
 * `evil.example` whose DNS name is re-pointed at 127.0.0.1 reaches a localhost coordinator with
 * `Host: evil.example:8080`; refusing names the coordinator does not serve stops it from joining
 * the swarm, reading /metrics or probing the operator API.
 *
 * Allowed: the bound host itself; localhost, 127.0.0.1 and [::1] when bound to a loopback or
 * wildcard address; the machine's interface addresses when bound to a wildcard (an IP literal
 * cannot be a rebinding attack: the attacker's page always carries its own name); and every name
 * given by `--public-host` (a name without a port matches any port, e.g. behind a reverse proxy).
 * Loopback, bound and interface names must carry the bound port (or none when it is 80).
 */
import type { IncomingMessage } from 'node:http';
import { networkInterfaces } from 'node:os';
import { ConfigError } from '../../shared/model/config.js';

const LOOPBACK = ['localhost', '127.0.0.1', '[::1]'];
const WILDCARD = ['0.0.0.0', '::', ''];

/** `host[:port]` split, IPv6 literals kept in brackets, names lowercased; null when malformed. */
export function parseHostHeader(raw: string): { name: string; port: number | null } | null {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/.exec(raw.trim());
  if (!m) return null;
  const port = m[2] === undefined ? null : Number(m[2]);
  if (port !== null && (port < 1 || port > 65535)) return null;
  return { name: m[1]!.toLowerCase().replace(/\.$/, ''), port };
}

export class HostCheck {
  /** Names that must come with the bound port. */
  private local = new Set<string>();
  /** `--public-host` entries: name -> port (null = any port). */
  private publicHosts = new Map<string, Set<number | null>>();
  private port = 0;

  constructor(private bindHost: string, publicHosts: readonly string[] = []) {
    for (const entry of publicHosts) {
      const p = parseHostHeader(entry);
      if (!p) throw new ConfigError(`--public-host: "${entry}" is not a host name (name or name:port)`);
      const ports = this.publicHosts.get(p.name) ?? new Set();
      ports.add(p.port);
      this.publicHosts.set(p.name, ports);
    }
  }

  /** Called once the server listens (the port may have been 0 = any). */
  bound(port: number): void {
    this.port = port;
    const h = this.bindHost.toLowerCase();
    const names = new Set<string>();
    const wildcard = WILDCARD.includes(h);
    if (!wildcard) names.add(h.includes(':') && !h.startsWith('[') ? `[${h}]` : h);
    if (wildcard || LOOPBACK.includes(h) || h === '::1' || h.startsWith('127.')) for (const n of LOOPBACK) names.add(n);
    if (wildcard) {
      for (const list of Object.values(networkInterfaces())) {
        for (const a of list ?? []) names.add(a.family === 'IPv6' ? `[${a.address.toLowerCase()}]` : a.address);
      }
    }
    this.local = names;
  }

  /** Whether `req`'s Host header (and an absolute-form request target's host) is one we serve. */
  hostAllowed(req: Pick<IncomingMessage, 'headers' | 'url'>): boolean {
    const raw = req.headers.host;
    if (typeof raw !== 'string' || !this.allowed(raw)) return false;
    // An absolute-form target (`GET http://other/ HTTP/1.1`) names the host that counts (RFC 9112 3.2.2).
    const url = req.url ?? '';
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
      const authority = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(url)![1]!;
      if (!this.allowed(authority.replace(/^.*@/, ''))) return false;
    }
    return true;
  }

  private allowed(raw: string): boolean {
    const p = parseHostHeader(raw);
    if (!p) return false;
    const pub = this.publicHosts.get(p.name);
    if (pub && (pub.has(null) || pub.has(p.port))) return true;
    if (!this.local.has(p.name)) return false;
    return p.port === this.port || (p.port === null && this.port === 80);
  }
}

/**
 * Same-origin pages only: a browser sends `Origin`, which must name the host it asked for;
 * non-browser clients (tests, Node volunteers) send none.
 */
export function originAllowed(req: { headers: { origin?: string; host?: string } }): boolean {
  const origin = req.headers.origin;
  if (!origin) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}
