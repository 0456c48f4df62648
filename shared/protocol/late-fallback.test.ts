import { describe, it, expect } from 'vitest';
import { lateFallbackSchema, relayedPeerFrameSchema } from './late-fallback.js';

describe('late fallback messages (docs/p2p.md#the-early-report)', () => {
  const fallback = { attempt: 3, iteration: 7, mb: 1, dir: 'F', hop: 2, reason: 'silent' };
  const relayed = { from: 'v2-0typ', kind: 'act', attempt: 3, iteration: 7, mb: 1, hop: 2 };

  it('accepts what a tab and the coordinator send', () => {
    expect(lateFallbackSchema.parse(fallback)).toEqual(fallback);
    expect(lateFallbackSchema.parse({ ...fallback, dir: 'B', reason: 'peer-closed' }).dir).toBe('B');
    expect(relayedPeerFrameSchema.parse(relayed)).toEqual(relayed);
  });

  it.each([
    ['an unknown reason', { reason: 'bored' }],
    ['an unknown direction', { dir: 'X' }],
    ['a negative microbatch', { mb: -1 }],
    ['a fractional hop', { hop: 1.5 }],
    ['a hop past 65535', { hop: 70_000 }],
    ['an attempt past 2^53', { attempt: 2 ** 53 }],
    ['an iteration past 2^32', { iteration: 2 ** 32 }],
    ['an unknown field', { frame: [1, 2, 3] }],
    ['a string for a number', { iteration: '7' }],
  ])('rejects a p2p_fallback with %s', (_what, change) => {
    expect(lateFallbackSchema.safeParse({ ...fallback, ...change }).success).toBe(false);
  });

  it.each([
    ['a peer id with odd characters', { from: 'v2 0typ' }],
    ['a peer id over 64 characters', { from: 'x'.repeat(65) }],
    ['an unknown kind', { kind: 'tokens' }],
    ['an unknown field', { to: 'v1' }],
  ])('rejects a p2p_relayed with %s', (_what, change) => {
    expect(relayedPeerFrameSchema.safeParse({ ...relayed, ...change }).success).toBe(false);
  });
});
