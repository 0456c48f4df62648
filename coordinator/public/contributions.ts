/**
 * What each browser has given the swarm, counted by the coordinator from the work it accepted:
 * forward microbatches (and their tokens) through a stage's blocks, and the compute time its tabs
 * reported for training tasks. Keyed by the browser's random local id (sent in hello, never shown
 * to anyone else); the public table shows only the opt-in nickname, or "anonymous".
 *
 * Kept in memory, bounded: beyond MAX_BROWSERS the smallest contributors are forgotten first.
 */
export const MAX_BROWSERS = 10_000;

export interface Contribution {
  tokens: number;
  gpuMs: number;
  microbatches: number;
}

export interface ContributorRow extends Contribution {
  rank: number;
  /** The opt-in nickname, or null (shown as anonymous). */
  nickname: string | null;
  /** True on the row of the browser that asked (only when it passed its own id). */
  mine?: boolean;
}

interface Entry extends Contribution {
  nickname: string | null;
  lastSeen: number;
}

export class Contributions {
  private byBrowser = new Map<string, Entry>();

  constructor(private maxBrowsers = MAX_BROWSERS) {}

  /** Sets (or clears) the nickname a browser chose for the public table. */
  setNickname(browserId: string, nickname: string | null): void {
    this.entry(browserId).nickname = nickname;
  }

  /** Adds accepted work. Non-finite or negative amounts are ignored. */
  record(browserId: string, tokens: number, gpuMs: number, microbatches: number): void {
    const ok = (x: number) => Number.isFinite(x) && x >= 0;
    if (!ok(tokens) || !ok(gpuMs) || !ok(microbatches)) return;
    const e = this.entry(browserId);
    e.tokens += tokens;
    e.gpuMs += gpuMs;
    e.microbatches += microbatches;
    e.lastSeen = Date.now();
  }

  /**
   * A task result the coordinator accepted: its compute time, and (a microbatch counts once per
   * stage it passes) its tokens when it was the forward hop that ran the stage's blocks.
   * Validation work is not credited.
   */
  creditTask(browserId: string, task: { dir: string; computeMs: number; runsBlocks: boolean }, tokensPerMicrobatch: number): void {
    if (task.dir === 'E') return;
    const forward = task.dir === 'F' && task.runsBlocks;
    this.record(browserId, forward ? tokensPerMicrobatch : 0, task.computeMs, forward ? 1 : 0);
  }

  /** This browser's totals (zero when unknown). */
  of(browserId: string): Contribution {
    const e = this.byBrowser.get(browserId);
    return { tokens: e?.tokens ?? 0, gpuMs: e?.gpuMs ?? 0, microbatches: e?.microbatches ?? 0 };
  }

  /** Browsers with any accepted work. */
  get size(): number {
    let n = 0;
    for (const e of this.byBrowser.values()) if (e.microbatches > 0 || e.gpuMs > 0) n++;
    return n;
  }

  /** The n largest contributors by tokens (then GPU time); `me` marks the asker's own row. */
  top(n: number, me?: string): ContributorRow[] {
    const rows = [...this.byBrowser.entries()]
      .filter(([, e]) => e.microbatches > 0 || e.gpuMs > 0)
      .sort(([, a], [, b]) => b.tokens - a.tokens || b.gpuMs - a.gpuMs);
    return rows.slice(0, Math.max(0, n)).map(([id, e], i) => ({
      rank: i + 1,
      nickname: e.nickname,
      tokens: e.tokens,
      gpuMs: Math.round(e.gpuMs),
      microbatches: e.microbatches,
      ...(me !== undefined && id === me ? { mine: true } : {}),
    }));
  }

  /** The asker's rank (1-based), or null before its first accepted work. */
  rankOf(browserId: string): number | null {
    const mine = this.byBrowser.get(browserId);
    if (!mine || (mine.microbatches === 0 && mine.gpuMs === 0)) return null;
    let rank = 1;
    for (const e of this.byBrowser.values()) if (e !== mine && (e.tokens > mine.tokens || (e.tokens === mine.tokens && e.gpuMs > mine.gpuMs))) rank++;
    return rank;
  }

  private entry(browserId: string): Entry {
    let e = this.byBrowser.get(browserId);
    if (!e) {
      if (this.byBrowser.size >= this.maxBrowsers) this.forgetSmallest();
      e = { tokens: 0, gpuMs: 0, microbatches: 0, nickname: null, lastSeen: Date.now() };
      this.byBrowser.set(browserId, e);
    }
    return e;
  }

  private forgetSmallest(): void {
    let worst: [string, Entry] | null = null;
    for (const kv of this.byBrowser) if (!worst || kv[1].tokens < worst[1].tokens || (kv[1].tokens === worst[1].tokens && kv[1].lastSeen < worst[1].lastSeen)) worst = kv;
    if (worst) this.byBrowser.delete(worst[0]);
  }
}
