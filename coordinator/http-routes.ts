/**
 * The coordinator's HTTP side on its one port: the volunteer page (/), the dashboard
 * (/dashboard), Prometheus metrics (/metrics), /healthz and the operator's token-protected API.
 * socket.io shares the server and answers /socket.io/ itself.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { existsSync } from 'node:fs';
import sirv from 'sirv';
import type { Logger } from './log.js';

export interface HttpRoutesDeps {
  /** The built client (vite build output); pages answer 503 until it exists. */
  clientDir: string;
  /** Operator endpoints; true when the request was theirs. */
  operator: (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<boolean>;
  /** /healthz body. */
  health: () => Record<string, unknown>;
  /** /metrics body and its content type. */
  metrics: () => Promise<{ contentType: string; text: string }>;
  /** The volunteer page's public API (public-routes.ts); true when the request was its. */
  publicRoute?: (url: URL, res: ServerResponse) => boolean;
  log: Logger;
}

export class HttpRoutes {
  private statics: ReturnType<typeof sirv> | null;

  constructor(private deps: HttpRoutesDeps) {
    this.statics = existsSync(deps.clientDir) ? sirv(deps.clientDir, { single: false, etag: true }) : null;
  }

  /** Answers one request; never throws (a failure is logged and answered with 500). */
  handle(req: IncomingMessage, res: ServerResponse): void {
    this.route(req, res).catch((e: unknown) => {
      this.deps.log.error({ err: (e as Error).message, method: req.method, url: String(req.url).slice(0, 200) }, 'HTTP handler failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('internal error\n');
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://x');
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('bad request target\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end('method not allowed\n');
      return;
    }
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
    if (url.pathname === '/dashboard' || url.pathname === '/dashboard/') req.url = '/dashboard.html' + url.search;
    this.statics(req, res, () => void res.writeHead(404).end('not found\n'));
  }
}
