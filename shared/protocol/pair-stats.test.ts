import { describe, it, expect } from 'vitest';
import { MAX_PAIR_STATS, pairStatsOf, pairStatsSchema } from './pair-stats.js';
import type { LinkStats } from '../transport/link-stats.js';

const stats = (peer: string, over: Partial<LinkStats> = {}): LinkStats => ({
  peer,
  state: 'open',
  framesSent: 3,
  bytesSent: 300,
  framesReceived: 2,
  bytesReceived: 200,
  wireBytesSent: 400,
  wireBytesReceived: 300,
  rttMs: 1.23456,
  frameMs: 7.891,
  lastFrameMs: 7,
  openMs: 10,
  queuedFrames: 0,
  unackedFrames: 0,
  bufferedBytes: 0,
  ...over,
});

describe('pair stats', () => {
  it('reports open or used links, rounded, at most MAX_PAIR_STATS, and what it reports passes the schema', () => {
    const links = [stats('a'), stats('b', { state: 'connecting', framesSent: 0, framesReceived: 0, rttMs: null, frameMs: null }), stats('c', { state: 'down', rttMs: Infinity })];
    const out = pairStatsOf(links);
    expect(out.map((p) => p.peer)).toEqual(['a', 'c']);
    expect(out[0]).toEqual({ peer: 'a', state: 'open', rttMs: 1.23, frameMs: 7.89, framesSent: 3, bytesSent: 300, framesReceived: 2, bytesReceived: 200 });
    expect(out[1]!.rttMs).toBeNull();
    expect(pairStatsSchema.safeParse(out).success).toBe(true);
    const many = pairStatsOf(Array.from({ length: MAX_PAIR_STATS + 5 }, (_, i) => stats(`p${i}`)));
    expect(many).toHaveLength(MAX_PAIR_STATS);
    expect(pairStatsSchema.safeParse(many).success).toBe(true);
  });

  it('rejects oversized lists, out-of-range or non-finite numbers, wrong types, long peer ids, unknown fields', () => {
    const ok = pairStatsOf([stats('a')])[0]!;
    const bad: unknown[] = [
      Array.from({ length: MAX_PAIR_STATS + 1 }, (_, i) => ({ ...ok, peer: `p${i}` })),
      [{ ...ok, rttMs: -1 }],
      [{ ...ok, rttMs: NaN }],
      [{ ...ok, frameMs: Infinity }],
      [{ ...ok, frameMs: 1e9 }],
      [{ ...ok, rttMs: '1' }],
      [{ ...ok, peer: '' }],
      [{ ...ok, peer: 'x'.repeat(65) }],
      [{ ...ok, framesSent: 1.5 }],
      [{ ...ok, bytesSent: -3 }],
      [{ ...ok, state: 'weird' }],
      [{ ...ok, extra: 1 }],
      { 0: ok },
    ];
    for (const b of bad) expect(pairStatsSchema.safeParse(b).success, JSON.stringify(b).slice(0, 80)).toBe(false);
  });
});
