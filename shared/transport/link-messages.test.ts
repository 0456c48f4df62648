/** The link's chunk protocol: what the receiver accepts from a peer, and what breaks the link. */
import { describe, it, expect } from 'vitest';
import { FrameAssembler } from './frame-assembler.js';
import { LinkProtocolError, decodeLinkMessage, encodeAck, encodeMore, encodePing, encodeStart } from './link-messages.js';
import { frameDigest } from './frame-digest.js';
import { turnCredentials } from './turn-credentials.js';
import { createHash, createHmac } from 'node:crypto';

const bytes = (n: number, k = 1) => Uint8Array.from({ length: n }, (_, i) => (i * k + 7) & 0xff);

describe('link messages', () => {
  it('round-trip start, more, ack, ping and pong', () => {
    const d = bytes(100);
    expect(decodeLinkMessage(encodeStart(7, 1000, d))).toEqual({ type: 'start', seq: 7, totalBytes: 1000, data: d });
    expect(decodeLinkMessage(encodeMore(7, 100, d))).toEqual({ type: 'more', seq: 7, offset: 100, data: d });
    expect(decodeLinkMessage(encodeAck(0xfffffffe))).toEqual({ type: 'ack', seq: 0xfffffffe });
    expect(decodeLinkMessage(encodePing('ping', 3, 1234.5))).toEqual({ type: 'ping', id: 3, sentAt: 1234.5 });
    expect(decodeLinkMessage(encodePing('pong', 4, 0.25))).toEqual({ type: 'pong', id: 4, sentAt: 0.25 });
  });

  it('reject empty, unknown, short and non-finite messages', () => {
    const bad = [new Uint8Array(0), Uint8Array.of(9), Uint8Array.of(1, 0, 0), Uint8Array.of(2, 0, 0, 0, 1), encodeAck(1).subarray(0, 7), new Uint8Array(17).fill(0)];
    const ping = encodePing('ping', 1, 0);
    new DataView(ping.buffer).setFloat64(8, NaN, true);
    for (const m of [...bad, ping]) expect(() => decodeLinkMessage(m)).toThrow(LinkProtocolError);
  });
});

describe('FrameAssembler', () => {
  it('rebuilds a frame from its chunks', () => {
    const frame = bytes(1000, 3);
    const fa = new FrameAssembler(4096);
    expect(fa.start(0, 1000, frame.subarray(0, 400))).toBeNull();
    expect(fa.more(0, 400, frame.subarray(400, 800))).toBeNull();
    expect(fa.more(0, 800, frame.subarray(800))).toEqual({ seq: 0, bytes: frame });
    expect(fa.start(1, 3, bytes(3))).toEqual({ seq: 1, bytes: bytes(3) });
  });

  it('breaks on a lost, repeated or misplaced chunk, an oversized or out-of-order frame', () => {
    const cases: [string, (fa: FrameAssembler) => void][] = [
      ['chunk lost', (fa) => (fa.start(0, 300, bytes(100)), fa.more(0, 200, bytes(100)))],
      ['chunk repeated', (fa) => (fa.start(0, 300, bytes(100)), fa.more(0, 100, bytes(100)), fa.more(0, 100, bytes(100)))],
      ['chunk of another frame', (fa) => (fa.start(0, 300, bytes(100)), fa.more(1, 100, bytes(100)))],
      ['overrun', (fa) => (fa.start(0, 150, bytes(100)), fa.more(0, 100, bytes(100)))],
      ['new frame before the last is complete', (fa) => (fa.start(0, 300, bytes(100)), fa.start(1, 10, bytes(10)))],
      ['sequence skipped', (fa) => (fa.start(0, 10, bytes(10)), fa.start(2, 10, bytes(10)))],
      ['frame too large (before allocating it)', (fa) => fa.start(0, 4097, bytes(10))],
      ['empty frame', (fa) => fa.start(0, 0, bytes(0))],
      ['chunk without a start', (fa) => fa.more(0, 0, bytes(10))],
      ['empty chunk mid-frame', (fa) => (fa.start(0, 300, bytes(100)), fa.more(0, 100, bytes(0)))],
    ];
    for (const [what, run] of cases) expect(() => run(new FrameAssembler(4096)), what).toThrow(LinkProtocolError);
  });
});

describe('frameDigest', () => {
  it('is the SHA-256 of the frame bytes, hex (FIPS 180-2 "abc" and a view into a larger buffer)', async () => {
    expect(await frameDigest(new TextEncoder().encode('abc'))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    const big = bytes(100_000, 13);
    const view = big.subarray(1000, 60_000);
    expect(await frameDigest(view)).toBe(createHash('sha256').update(view).digest('hex'));
    const flipped = view.slice();
    flipped[12345] ^= 1;
    expect(await frameDigest(flipped)).not.toBe(await frameDigest(view));
  });
});

describe('turnCredentials', () => {
  it("match coturn's TURN REST API: user <expiry>.<tab>, password base64 HMAC-SHA1", async () => {
    const now = 1_700_000_000_000;
    const c = await turnCredentials('s3cret', 'tab-1', 3600, now);
    expect(c.username).toBe(`${1_700_000_000 + 3600}.tab-1`);
    expect(c.expires).toBe(1_700_003_600);
    expect(c.credential).toBe(createHmac('sha1', 's3cret').update(c.username).digest('base64'));
  });

  it('refuse an empty secret, a tab id with separators and absurd lifetimes', async () => {
    await expect(turnCredentials('', 'a', 3600)).rejects.toThrow(/secret/);
    await expect(turnCredentials('s', 'a.b', 3600)).rejects.toThrow(/tab id/);
    await expect(turnCredentials('s', 'a:b', 3600)).rejects.toThrow(/tab id/);
    await expect(turnCredentials('s', 'a', 10)).rejects.toThrow(/ttl/);
  });
});
