/**
 * Who is on the other end of a request or socket, for rate limits and logs. Without a proxy it is
 * the peer's address. With `--trust-proxy` the peer is the reverse proxy, which appends the address
 * it saw to X-Forwarded-For (nginx: `proxy_add_x_forwarded_for`); only that last entry is trusted,
 * since a client may send any X-Forwarded-For of its own to the proxy.
 */
import { isIP } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';

/** `::ffff:1.2.3.4` is 1.2.3.4. */
function normalise(addr: string): string {
  const a = addr.trim().replace(/^\[|\]$/g, '');
  return a.startsWith('::ffff:') && isIP(a.slice(7)) === 4 ? a.slice(7) : a;
}

/** The client's address: the peer's, or with `trustProxy` the last valid X-Forwarded-For entry. */
export function clientAddress(req: { socket?: { remoteAddress?: string }; headers: IncomingHttpHeaders }, trustProxy: boolean): string {
  const peer = normalise(req.socket?.remoteAddress ?? '') || 'unknown';
  if (!trustProxy) return peer;
  const header = req.headers['x-forwarded-for'];
  const value = Array.isArray(header) ? header.join(',') : header;
  if (!value || value.length > 4096) return peer;
  const last = normalise(value.split(',').at(-1) ?? '');
  return isIP(last) ? last : peer;
}
