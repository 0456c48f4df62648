/**
 * Per-pair link figures a tab reports in its `stats` heartbeat (issue 23, docs/p2p.md): for each
 * peer it has a WebRTC link to, the ping round trip and the mean time from handing a frame to the
 * link to the peer's acknowledgement, with frames and bytes each way. The coordinator validates
 * the list (at most MAX_PAIR_STATS entries, finite bounded numbers, peer ids like every other)
 * before it reaches the dashboard or Prometheus.
 */
import { z } from 'zod';
import type { LinkStats } from '../transport/link-stats.js';

/** Links a tab may report (PeerLinks' own cap is 32). */
export const MAX_PAIR_STATS = 32;

const ms = z.number().finite().min(0).max(600_000);
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const pairStatSchema = z.strictObject({
  peer: z.string().min(1).max(64),
  state: z.enum(['connecting', 'open', 'down']),
  /** Ping round trip on the data channel, moving average (null before the first pong). */
  rttMs: ms.nullable(),
  /** Handing a frame to the link until the peer's acknowledgement, moving average. */
  frameMs: ms.nullable(),
  framesSent: count,
  bytesSent: count,
  framesReceived: count,
  bytesReceived: count,
});
export type PairStat = z.infer<typeof pairStatSchema>;

export const pairStatsSchema = z.array(pairStatSchema).max(MAX_PAIR_STATS);

const round = (x: number | null) => (x === null || !Number.isFinite(x) ? null : Math.round(Math.min(600_000, Math.max(0, x)) * 100) / 100);

/** What a tab reports of its links: the open or once-used ones, at most MAX_PAIR_STATS. */
export function pairStatsOf(links: readonly LinkStats[]): PairStat[] {
  return links
    .filter((l) => l.state === 'open' || l.framesSent + l.framesReceived > 0)
    .slice(0, MAX_PAIR_STATS)
    .map((l) => ({
      peer: l.peer,
      state: l.state,
      rttMs: round(l.rttMs),
      frameMs: round(l.frameMs),
      framesSent: l.framesSent,
      bytesSent: l.bytesSent,
      framesReceived: l.framesReceived,
      bytesReceived: l.bytesReceived,
    }));
}
