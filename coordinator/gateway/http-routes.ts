/**
 * The coordinator's HTTP side on its one port: the volunteer page (/), the dashboard
 * (/dashboard), Prometheus metrics (/metrics), /healthz and the operator's token-protected API.
 * socket.io shares the server and answers /socket.io/ itself.
 *
 * Strangers reach this port, so nothing a request carries may throw out of here: the request
 * target is parsed defensively (`//`, absolute URLs with bad ports, bad percent-encoding, `*`
 * get a 400), a Host the coordinator does not serve gets a 421 (DNS rebinding, see host-check.ts),
 * methods other than GET/HEAD a 405, and what node's parser refuses itself (unknown methods,
 * headers over `maxHeaderSize`, garbage) a 400/431 from the `clientError` handler.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { existsSync } from 'node:fs';
import sirv from 'sirv';
import type { Logger } from '../record/log.js';
import type { HostCheck } from './host-check.js';

/** Longest request target answered (node's header limit, 16 KiB, bounds the rest). */
export const MAX_TARGET_CHARS = 4096;

export type HttpRejectReason = 'bad_target' | 'target_too_long' | 'host' | 'method' | 'client_error' | 'header_overflow' | 'handler';

export interface HttpRoutesDeps {
  /** The built client (vite build output); pages answer 503 until it exists. */
  clientDir: string;
  /** Operator endpoints; true when the request was theirs. */
  operator: (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean>;
  /** /healthz body. */
  health: () => Record<string, unknown>;
  /** /metrics body and its content type. */
  metrics: () => Promise<{ contentType: string; text: string }>;
  /** The Host headers this coordinator serves. */
  hosts: HostCheck;
  /** Counts a refused request (swarm_http_rejected_total). */
  rejected: (reason: HttpRejectReason) => void;
  /** The volunteer page's public API (public-routes.ts); true when the request was its. */
  publicRoute?: (url: URL, res: ServerResponse) => boolean;
  log: Logger;
}

/** The request target as a URL, or null when it is not one this server can answer. */
export function parseTarget(target: string | undefined): URL | null {
  const t = target ?? '';
  let url: URL;
  try {
    if (t.startsWith('/') && !t.startsWith('//')) url = new URL(t, 'http://localhost');
    else if (/^https?:\/\//i.test(t)) url = new URL(t);
    else return null; // `//x`, `*`, authority-form, relative paths, empty
    decodeURIComponent(url.pathname); // throws URIError on bad percent-encoding
  } catch {
    return null;
  }
  return url;
}

export class HttpRoutes {
  private statics: ReturnType<typeof sirv> | null;

  constructor(private deps: HttpRoutesDeps) {
    this.statics = existsSync(deps.clientDir) ? sirv(deps.clientDir, { single: false, etag: true }) : null;
  }

  /** Whether a request (HTTP or the socket.io handshake) names a Host this coordinator serves. */
  hostAllowed(req: Pick<IncomingMessage, 'headers' | 'url'>): boolean {
    return this.deps.hosts.hostAllowed(req);
  }

  /** The listening port is known (Host names must carry it). */
  bound(port: number): void {
    this.deps.hosts.bound(port);
  }

  /**
   * The server-level guards: parser errors (unknown methods, oversized headers, garbage) get a
   * 4xx instead of a dropped connection, CONNECT a 405, and headers must arrive within 10 s.
   */
  attach(server: Server): void {
    server.headersTimeout = Math.min(server.headersTimeout, 10_000);
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      const overflow = err.code === 'HPE_HEADER_OVERFLOW';
      this.deps.rejected(overflow ? 'header_overflow' : 'client_error');
      if (!socket.writable || (err.code === 'ECONNRESET')) return void socket.destroy();
      const status = overflow ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    });
    server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
      this.deps.rejected('method');
      socket.on('error', () => {});
      socket.end('HTTP/1.1 405 Method Not Allowed\r\nallow: GET, HEAD\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    });
  }

  /** Answers one request; never throws (a failure is logged and answered with 500). */
  handle(req: IncomingMessage, res: ServerResponse): void {
    this.route(req, res).catch((e: unknown) => {
      this.deps.rejected('handler');
      this.deps.log.error({ err: (e as Error)?.message, method: req.method, url: String(req.url).slice(0, 200) }, 'HTTP handler failed');
      if (res.headersSent) return void res.destroy();
      res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error\n');
    });
  }

  private refuse(res: ServerResponse, reason: HttpRejectReason, status: number, text: string, headers: Record<string, string> = {}): void {
    this.deps.rejected(reason);
    res.writeHead(status, { 'content-type': 'text/plain', connection: 'close', ...headers }).end(text);
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if ((req.url ?? '').length > MAX_TARGET_CHARS) return this.refuse(res, 'target_too_long', 414, 'request target too long\n');
    const url = parseTarget(req.url);
    if (!url) return this.refuse(res, 'bad_target', 400, 'bad request target\n');
    if ((req.headersDistinct.host?.length ?? 0) > 1) return this.refuse(res, 'host', 400, 'more than one Host header\n');
    if (!this.hostAllowed(req)) {
      return this.refuse(res, 'host', 421, 'this coordinator does not serve that host name (start it with --public-host <name> to serve it)\n');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.refuse(res, 'method', 405, 'method not allowed\n', { allow: 'GET, HEAD' });
    if (await this.deps.operator(req, res, url)) return;
    if (this.deps.publicRoute?.(url, res)) return;
    if (url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(this.deps.health()));
      return;
    }
    if (url.pathname === '/metrics') {
      const m = await this.deps.metrics();
      res.writeHead(200, { 'content-type': m.contentType }).end(m.text);
      return;
    }
    if (!this.statics) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('client not built: run `npm run build` (npm start does it for you)\n');
      return;
    }
    // sirv reads req.url: hand it the parsed origin-form path, never an absolute-form target.
    req.url = (url.pathname === '/dashboard' || url.pathname === '/dashboard/' ? '/dashboard.html' : url.pathname) + url.search;
    this.statics(req, res, () => void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n'));
  }
}
