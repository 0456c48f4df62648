/**
 * Throttles operator-token guessing per client address: each wrong or missing token takes one
 * token from the address's bucket (`burst` guesses, then one per `everySeconds`); while the
 * bucket is empty the address is refused (HTTP 429, socket.io `connect_error`) without the token
 * even being compared. A correct token costs nothing. At most `maxAddresses` buckets are kept
 * (the oldest forgotten first), so a flood of addresses cannot grow memory.
 */
import { TokenBucket } from '../gateway/token-bucket.js';

export interface AuthThrottleOptions {
  burst: number;
  everySeconds: number;
  maxAddresses: number;
}

export const DEFAULT_AUTH_THROTTLE: AuthThrottleOptions = { burst: 10, everySeconds: 6, maxAddresses: 10_000 };

export class AuthThrottle {
  private buckets = new Map<string, TokenBucket>();

  constructor(private o: AuthThrottleOptions = DEFAULT_AUTH_THROTTLE) {}

  /** Whether `address` may try a token now. */
  allowed(address: string): boolean {
    return this.buckets.get(address)?.ready() ?? true;
  }

  /** Records a failed attempt from `address`. */
  failed(address: string): void {
    let b = this.buckets.get(address);
    if (!b) {
      if (this.buckets.size >= this.o.maxAddresses) this.buckets.delete(this.buckets.keys().next().value!);
      b = new TokenBucket(1 / this.o.everySeconds, this.o.burst);
      this.buckets.set(address, b);
    }
    b.take();
  }

  /** Seconds until `address` may try again (for Retry-After). */
  get retryAfterSeconds(): number {
    return Math.ceil(this.o.everySeconds);
  }
}
