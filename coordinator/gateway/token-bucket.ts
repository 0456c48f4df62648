/** A token bucket: `rate` tokens per second, at most `burst` saved up (flood control per tab). */
export class TokenBucket {
  private tokens: number;
  private last = Date.now();

  constructor(private rate: number, private burst: number) {
    this.tokens = burst;
  }

  take(): boolean {
    if (!this.ready()) return false;
    this.tokens -= 1;
    return true;
  }

  /** Whether a token is available now (refills, takes nothing). */
  ready(): boolean {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    return this.tokens >= 1;
  }
}
