/**
 * Who may act as the operator: the operator token (compared in constant time, throttled per
 * client address: auth-throttle.ts) and single-use export tickets, so a download link never carries
 * the token itself.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { SwarmMetrics } from '../record/metrics.js';
import type { Logger } from '../record/log.js';
import { AuthThrottle } from './auth-throttle.js';

/** A fresh random operator token (192 bits, URL-safe). */
export function newOperatorToken(): string {
  return randomBytes(24).toString('base64url');
}

/** Constant-time comparison (hashing first makes the lengths equal). */
export function tokenMatches(given: unknown, expected: string): boolean {
  if (typeof given !== 'string' || given.length === 0 || given.length > 1024) return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * The token of an HTTP request: `Authorization: Bearer <token>` only. Never a query parameter:
 * URLs end up in logs, browser history and Referer headers.
 */
export function requestToken(req: IncomingMessage): string | null {
  const h = req.headers.authorization;
  if (h && /^Bearer\s+/i.test(h)) return h.replace(/^Bearer\s+/i, '').trim();
  return null;
}

/** How long a signed export link (`/api/operator/export?ticket=`) stays valid; it works once. */
export const EXPORT_TICKET_MS = 60_000;
const MAX_TICKETS = 32;

export type AuthResult = 'ok' | 'missing' | 'wrong' | 'throttled';

export class OperatorAuth {
  /** Per-address throttle on wrong operator tokens. */
  readonly throttle = new AuthThrottle();
  /** Single-use export links: ticket -> expiry (epoch ms). */
  private tickets = new Map<string, number>();

  constructor(readonly token: string, private deps: { metrics: SwarmMetrics; log: Logger }) {}

  /** Checks a presented token for `address` (counted and logged when refused). */
  authenticate(given: unknown, address: string): AuthResult {
    const result: AuthResult = !this.throttle.allowed(address)
      ? 'throttled'
      : typeof given !== 'string' || given === ''
        ? 'missing'
        : tokenMatches(given, this.token)
          ? 'ok'
          : 'wrong';
    if (result === 'wrong') this.throttle.failed(address);
    if (result !== 'ok') this.deps.metrics.authFailures.inc({ result });
    if (result === 'wrong' || result === 'throttled') this.deps.log.warn({ address, result }, 'operator access refused');
    return result;
  }

  /** A bad export ticket counts as a wrong token. */
  badTicket(address: string): void {
    this.throttle.failed(address);
    this.deps.metrics.authFailures.inc({ result: 'wrong' });
  }

  /** A fresh single-use export ticket. */
  newTicket(): string {
    const now = Date.now();
    for (const [t, exp] of this.tickets) if (exp <= now) this.tickets.delete(t);
    while (this.tickets.size >= MAX_TICKETS) this.tickets.delete(this.tickets.keys().next().value!);
    const t = randomBytes(24).toString('base64url');
    this.tickets.set(t, now + EXPORT_TICKET_MS);
    return t;
  }

  /** Consumes `ticket`; true when it was issued, unused and unexpired. */
  useTicket(ticket: string): boolean {
    const exp = this.tickets.get(ticket);
    this.tickets.delete(ticket);
    return exp !== undefined && exp > Date.now();
  }
}
