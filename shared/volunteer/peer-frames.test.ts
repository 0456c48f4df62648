/**
 * PeerFrames with stand-in links (no WebRTC): the early report, the fallback after it, frames
 * that arrive after their task or through the coordinator, and waits an abandoned pass ends.
 */
import { describe, it, expect } from 'vitest';
import { PeerFrames, PeerFrameRefused } from './peer-frames.js';
import type { FrameLinks, FrameLinksDeps } from '../transport/link-bridge.js';
import type { FrameReceipt } from '../transport/peer-link.js';
import { LinkDownError } from '../transport/link-down-error.js';
import { encodeTensorFrame } from '../protocol/codec.js';
import { frameDigest } from '../transport/frame-digest.js';
import type { InputFrom, SentReport } from '../protocol/p2p-messages.js';

const SHAPE = [1, 2, 3];
const frameOf = (iteration: number, mb: number, hop: number, v = 1) =>
  encodeTensorFrame({ kind: 'act', iteration, microbatch: mb, hop, fromStage: 0, toStage: 1, dtype: 'float32', shape: SHAPE }, new Float32Array(6).fill(v));
const input: InputFrom = { peer: 'a', kind: 'act', hop: 0, fromStage: 0, shape: SHAPE, maxBytes: 1 << 20 };

/** Links whose sends the test settles by hand; `deliver` plays a frame arriving from a peer. */
function standIn() {
  let deps: FrameLinksDeps | null = null;
  const sends: { peer: string; resolve: (r: FrameReceipt) => void; reject: (e: Error) => void; frame: Uint8Array }[] = [];
  const links: FrameLinks = {
    send: (peer, frame) => new Promise<FrameReceipt>((resolve, reject) => void sends.push({ peer, resolve, reject, frame })),
    handleSignal: () => {},
    setRtcConfig: () => {},
    closeAll: () => {},
    stats: () => [],
  };
  const frames = new PeerFrames({ createLinks: (d) => ((deps = d), links), signal: () => {}, log: () => {} });
  frames.configure('b', { transport: 'p2p', rtc: {} });
  const enveloped = (attempt: number, f: Uint8Array) => {
    const e = new Uint8Array(4 + f.byteLength);
    new DataView(e.buffer).setUint32(0, attempt, true);
    e.set(f, 4);
    return e;
  };
  return {
    frames,
    sends,
    deliver: (from: string, attempt: number, f: Uint8Array) => deps!.events.onFrame(from, enveloped(attempt, f)),
    down: (peer: string) => deps!.events.onLinkDown?.(peer, 'silent', 'test'),
  };
}

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('PeerFrames', () => {
  it('reports a frame when it is handed to a link that carried one, not before the link is proven nor after it went down', async () => {
    const { frames, sends, down } = standIn();
    const f = frameOf(0, 0, 0);
    const early: SentReport[] = [];
    // The link's first frame: reported on the ack only.
    const first = frames.send({ peer: 'c', stage: 1 }, 7, f, (s) => early.push(s));
    await tick();
    expect(early).toEqual([]);
    sends[0]!.resolve({ seq: 0, bytes: f.byteLength + 4, ms: 1 });
    expect(await first).toEqual({ sent: { to: 'c', bytes: f.byteLength, digest: await frameDigest(f) } });
    // Proven: reported as soon as it is handed over, while the ack is still out.
    const second = frames.send({ peer: 'c', stage: 1 }, 7, f, (s) => early.push(s));
    await tick();
    expect(early).toEqual([{ to: 'c', bytes: f.byteLength, digest: await frameDigest(f) }]);
    expect(sends).toHaveLength(2);
    // The link breaks before the ack: the caller gets the fallback (it sends p2p_fallback).
    sends[1]!.reject(new LinkDownError('c', 'silent', 'test', [sends[1]!.frame]));
    expect(await second).toEqual({ fallback: 'silent' });
    // A link that went down is new again: no early report.
    down('c');
    void frames.send({ peer: 'c', stage: 1 }, 7, f, (s) => early.push(s));
    await tick();
    expect(early).toHaveLength(1);
  });

  it('a task that comes before its frame waits for it, from the link or relayed by the coordinator', async () => {
    const { frames, deliver } = standIn();
    const f = frameOf(3, 1, 0, 2);
    const waiting = frames.receive(input, 5, 3, 1, 1, 'f32');
    await tick();
    deliver('a', 5, f);
    const r = await waiting;
    expect(r.got).toEqual({ from: 'a', digest: await frameDigest(f), norm: expect.closeTo(Math.sqrt(6 * 4), 5) });
    // Relayed (the sender's link broke after its early report): the same inbox, the same check.
    const g = frameOf(3, 2, 0, 3);
    const relayedWait = frames.receive(input, 5, 3, 2, 1, 'f32');
    frames.relayed({ from: 'a', kind: 'act', attempt: 5, iteration: 3, mb: 2, hop: 0 }, g);
    expect((await relayedWait).got.digest).toBe(await frameDigest(g));
    // The same frame again (the link delivered it after all): dropped, not taken twice.
    deliver('a', 5, g);
    expect(frames.has(input, 5, 3, 2)).toBe(false);
  });

  it("a relayed frame that is not the task's fails the hop check; one from another tab is refused as wrong_peer", async () => {
    const { frames } = standIn();
    frames.relayed({ from: 'a', kind: 'act', attempt: 1, iteration: 4, mb: 0, hop: 0 }, frameOf(9, 0, 0));
    await expect(frames.receive(input, 1, 4, 0, 1, 'f32')).rejects.toMatchObject({ reason: 'header' });
    frames.relayed({ from: 'z', kind: 'act', attempt: 1, iteration: 4, mb: 1, hop: 0 }, frameOf(4, 1, 0));
    await expect(frames.receive(input, 1, 4, 1, 1, 'f32')).rejects.toMatchObject({ reason: 'wrong_peer' });
  });

  it('an abandoned pass ends the waits of its tasks', async () => {
    const { frames } = standIn();
    const waiting = frames.receive(input, 2, 0, 0, 1, 'f32');
    await tick();
    frames.cancelWaits();
    const e = await waiting.catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PeerFrameRefused);
    expect((e as PeerFrameRefused).reason).toBe('abandoned');
  });
});

describe('PeerFrames: --p2p-stripes from p2p_config', () => {
  const linksFor = (stripes: unknown) => {
    let deps: FrameLinksDeps | null = null;
    const warnings: string[] = [];
    const frames = new PeerFrames({
      createLinks: (d) => ((deps = d), { send: () => Promise.reject(new Error('unused')), handleSignal: () => {}, setRtcConfig: () => {}, closeAll: () => {}, stats: () => [] }),
      signal: () => {},
      log: (_level, m) => void warnings.push(m),
    });
    frames.configure('b', { transport: 'p2p', rtc: {}, stripes } as never);
    return { stripes: deps!.stripes ?? 1, warnings };
  };

  it('opens links of the stripes asked for; a value outside 1 .. 8 (or not an integer) is refused with a warning and links stay single', () => {
    expect(linksFor(undefined)).toEqual({ stripes: 1, warnings: [] });
    expect(linksFor(4)).toEqual({ stripes: 4, warnings: [] });
    expect(linksFor(8)).toEqual({ stripes: 8, warnings: [] });
    for (const bad of [0, 9, 2.5, '4', -1, null]) {
      const got = linksFor(bad);
      expect(got.stripes, String(bad)).toBe(1);
      expect(got.warnings[0]).toMatch(/stripes/);
    }
  });
});
