/**
 * Striped links (`--p2p-stripes`, striped-link.ts): two PeerLinks managers with K stripes per
 * pair over loopback on the default Node WebRTC stack, their signals carried as JSON on a later
 * turn of the event loop (as the coordinator would).
 */
import { describe, it, expect, afterEach } from 'vitest';
import { patternFrame } from '../../testing/peer-pair.js';
import { until } from '../../testing/until.js';
import { LinkDownError, type LinkFailure } from './link-down-error.js';
import type { FrameReceipt, PeerLinkOptions } from './peer-link.js';
import { PeerLinks } from './peer-links.js';
import { StripedLink, partCount, MIN_PART_BYTES } from './striped-link.js';
import { LOOPBACK_ONLY, nodePeerConnectionFactory } from '../../trainer/node-webrtc.js';

const KiB = 1024;
const MiB = 1024 * KiB;

interface End {
  links: PeerLinks;
  frames: Uint8Array[];
  downs: LinkFailure[];
  rejected: string[];
  ups: number;
  connections: number;
}

let ends: End[] = [];
afterEach(async () => {
  for (const e of ends) e.links.closeAll();
  ends = [];
  await new Promise((r) => setTimeout(r, 200));
});

function stripedPair(a: string, b: string, stripes: number, linkOptions?: Partial<PeerLinkOptions>): [End, End] {
  const all = new Map<string, End>();
  const make = (self: string): End => {
    const end: End = { links: null as unknown as PeerLinks, frames: [], downs: [], rejected: [], ups: 0, connections: 0 };
    const create = nodePeerConnectionFactory();
    end.links = new PeerLinks({
      self,
      stripes,
      signal: (to, signal) => {
        const wire = JSON.stringify(signal);
        setImmediate(() => all.get(to)?.links.handleSignal(self, JSON.parse(wire)));
      },
      createPeerConnection: (c) => (end.connections++, create(c)),
      rtcConfig: LOOPBACK_ONLY,
      linkOptions,
      events: {
        onFrame: (_from, frame) => end.frames.push(frame),
        onLinkUp: () => end.ups++,
        onLinkDown: (_peer, failure) => end.downs.push(failure),
        onSignalRejected: (_from, message) => end.rejected.push(message),
      },
    });
    all.set(self, end);
    return end;
  };
  return (ends = [make(a), make(b)]) as [End, End];
}

function equalBytes(x: Uint8Array, y: Uint8Array): boolean {
  if (x.byteLength !== y.byteLength) return false;
  for (let i = 0; i < x.byteLength; i++) if (x[i] !== y[i]) return false;
  return true;
}

describe('partCount', () => {
  it('cuts a frame into up to K parts of at least MIN_PART_BYTES; a small frame stays whole', () => {
    expect(partCount(1, 4)).toBe(1);
    expect(partCount(2 * MIN_PART_BYTES - 1, 4)).toBe(1);
    expect(partCount(2 * MIN_PART_BYTES, 4)).toBe(2);
    expect(partCount(256 * KiB, 4)).toBe(4);
    expect(partCount(256 * KiB, 8)).toBe(8);
    expect(partCount(64 * MiB, 3)).toBe(3);
  });
});

describe('StripedLink over loopback (3 stripes)', () => {
  it('moves frames of 1 KiB to 2 MiB intact and in order, both ways at once, under backpressure, over 3 connections per side', async () => {
    const highWaterBytes = 128 * KiB;
    const [a, b] = stripedPair('alice', 'bob', 3, { highWaterBytes, lowWaterBytes: 32 * KiB, chunkBytes: 16 * KiB });
    const sizes = [1 * KiB, 32 * KiB - 1, 32 * KiB, 48 * KiB + 1, 64 * KiB + 13, 300 * KiB, 1 * MiB, 2 * MiB, 5, 2 * MiB - 1];
    const toBob = sizes.map((n, i) => patternFrame(n, i + 1));
    const toAlice = sizes.map((n, i) => patternFrame(n, 100 + i));
    const sent: Promise<FrameReceipt>[] = [];
    for (let i = 0; i < sizes.length; i++) sent.push(a.links.send('bob', toBob[i]), b.links.send('alice', toAlice[i]));
    let sawBackpressure = false;
    const poll = setInterval(() => {
      for (const s of [...a.links.stats(), ...b.links.stats()]) if (s.state === 'open' && s.queuedFrames > 0 && s.bufferedBytes > 0) sawBackpressure = true;
    }, 2);
    const receipts = await Promise.all(sent);
    clearInterval(poll);
    await until(() => a.frames.length === sizes.length && b.frames.length === sizes.length, 'every frame delivered', 20_000);
    for (let i = 0; i < sizes.length; i++) {
      expect(equalBytes(b.frames[i], toBob[i]), `frame ${i} to bob (${sizes[i]} B)`).toBe(true);
      expect(equalBytes(a.frames[i], toAlice[i]), `frame ${i} to alice (${sizes[i]} B)`).toBe(true);
    }
    expect(receipts.map((r) => r.bytes)).toEqual(sizes.flatMap((n) => [n, n]));
    expect(sawBackpressure).toBe(true);
    // One link per pair, of three peer connections on each side.
    expect(a.links.link('bob')).toBeInstanceOf(StripedLink);
    expect([a.connections, b.connections]).toEqual([3, 3]);
    expect([a.ups, b.ups]).toEqual([1, 1]);
    const total = sizes.reduce((s, n) => s + n, 0);
    const [sa] = a.links.stats();
    expect([sa.bytesSent, sa.bytesReceived, sa.framesSent, sa.framesReceived]).toEqual([total, total, sizes.length, sizes.length]);
    expect(sa.wireBytesSent).toBeGreaterThan(total);
    expect(sa.wireBytesSent).toBeLessThan(total * 1.01);
    expect([a.downs, b.downs, a.rejected, b.rejected]).toEqual([[], [], [], []]);
    // Every stripe carried its share (the big frames are cut in three).
    const stripes = (a.links.link('bob') as unknown as { stripes: { stats(): { bytesSent: number } }[] }).stripes;
    for (const s of stripes) expect(s.stats().bytesSent).toBeGreaterThan(total / 4);
  });

  it('a stripe that breaks takes the link down: the frames it had not delivered come back whole, and a fresh link works', async () => {
    const [a, b] = stripedPair('a', 'b', 3, { silenceTimeoutMs: 1000, pingIntervalMs: 200 });
    await a.links.send('b', patternFrame(100 * KiB, 1));
    const big = patternFrame(2 * MiB, 2);
    const small = patternFrame(2 * KiB, 3);
    const inFlight = [a.links.send('b', big), a.links.send('b', small)].map((p) => p.catch((e: unknown) => e));
    // One of b's three connections closes (the others stay up): the pair's link is down.
    (b.links.link('a') as unknown as { stripes: { close(): void }[] }).stripes[2].close();
    const errs = await Promise.all(inFlight);
    for (const [i, frame] of [big, small].entries()) {
      if (!(errs[i] instanceof LinkDownError)) continue; // it made it before the break
      const back = (errs[i] as LinkDownError).frames;
      expect(back.length === 1 && back[0] === frame).toBe(true); // the whole frame, not a part
    }
    expect(errs[0]).toBeInstanceOf(LinkDownError);
    await until(() => a.downs.length === 1 && b.downs.length === 1, 'both ends down', 5000);
    expect(b.downs).toEqual(['closed']);
    expect(a.links.link('b')).toBeUndefined();
    const again = patternFrame(200 * KiB, 4);
    await a.links.send('b', again);
    await until(() => b.frames.some((f) => equalBytes(f, again)), 'frame on the new link', 5000);
  });

  it('a part that claims another stripe breaks the link with "protocol"', async () => {
    const [a, b] = stripedPair('a', 'b', 2);
    await a.links.send('b', patternFrame(1 * KiB, 1));
    // Stripe 1 of a's link sends a part whose header says part 0.
    const stripe1 = (a.links.link('b') as unknown as { stripes: { send(f: Uint8Array): Promise<unknown> }[] }).stripes[1];
    const bad = new Uint8Array(10);
    new DataView(bad.buffer).setUint32(0, 1, true);
    bad[4] = 0;
    bad[5] = 2;
    void stripe1.send(bad).catch(() => {});
    await until(() => b.downs.length === 1, 'b drops the link', 5000);
    expect(b.downs).toEqual(['protocol']);
  });
});

describe('stripe indices in signals', () => {
  const offer = (stripe?: unknown) => ({ type: 'offer', link: 'abcdefgh', sdp: 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n', ...(stripe === undefined ? {} : { stripe }) });
  const candidate = (stripe?: unknown) => ({ type: 'candidate', link: 'abcdefgh', candidate: '', sdpMid: '0', sdpMLineIndex: 0, ...(stripe === undefined ? {} : { stripe }) });

  it('out of range, missing, malformed, or given to unstriped links: rejected without opening anything', () => {
    const [, n2] = stripedPair('m', 'n', 2);
    const bad = [offer(2), offer(), offer(-1), offer(1.5), offer('0'), offer(8), candidate(2), candidate(), { type: 'connect', link: 'abcdefgh', stripe: 0 }, { type: 'bye', link: 'abcdefgh', stripe: 1 }];
    for (const s of bad) n2.links.handleSignal('m', s);
    expect(n2.rejected).toHaveLength(bad.length);
    expect(n2.connections).toBe(0);
    const one = stripedPair('p', 'q', 1)[1];
    ends.push(n2);
    one.links.handleSignal('p', offer(0));
    one.links.handleSignal('p', candidate(0));
    expect(one.rejected).toHaveLength(2);
    expect(one.connections).toBe(0);
  });

  it('PeerLinks takes 1 .. 8 stripes', () => {
    for (const stripes of [0, 9, 1.5]) expect(() => new PeerLinks({ self: 'a', stripes, signal: () => {}, createPeerConnection: nodePeerConnectionFactory(), events: { onFrame: () => {} } })).toThrow(/stripes/);
  });
});
