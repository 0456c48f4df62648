/**
 * A fixed one-way delay for callbacks: each `push(send)` runs `send` `delayMs` later. Every item
 * waits the same delay, so due times arrive in order: one FIFO and one timer for its head, instead
 * of a timer per item (a 256 KiB frame is ~200 datagrams; on a loaded CPU a timer each added its
 * own scheduling delay). Items due within 1 ms go out together. Used by the userspace UDP relays
 * that stand in for a link's latency (testing/udp-delay-proxy.ts, testing/udp-pipe.ts).
 */
export class DelayLine {
  private readonly due: { at: number; send: () => void }[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** How late items went out against their due time, ms (a stalled event loop shows here): count, sum, largest. */
  readonly lateness = { n: 0, sumMs: 0, maxMs: 0 };

  constructor(private readonly delayMs: number) {
    if (!(Number.isFinite(delayMs) && delayMs >= 0)) throw new RangeError(`delayMs must be >= 0, got ${delayMs}`);
  }

  push(send: () => void): void {
    if (this.closed) return;
    this.due.push({ at: performance.now() + this.delayMs, send });
    if (this.timer === null) this.timer = setTimeout(this.drain, this.delayMs);
  }

  /** Drops whatever still waits; later pushes are ignored. */
  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.due.length = 0;
  }

  private readonly drain = (): void => {
    this.timer = null;
    const now = performance.now();
    while (this.head < this.due.length && this.due[this.head]!.at <= now + 1) {
      const item = this.due[this.head++]!;
      const late = Math.max(0, now - item.at);
      this.lateness.n++;
      this.lateness.sumMs += late;
      if (late > this.lateness.maxMs) this.lateness.maxMs = late;
      item.send();
    }
    if (this.head > 1024 && this.head * 2 > this.due.length) {
      this.due.splice(0, this.head);
      this.head = 0;
    }
    if (!this.closed && this.head < this.due.length) this.timer = setTimeout(this.drain, Math.max(0, this.due[this.head]!.at - performance.now()));
  };
}
