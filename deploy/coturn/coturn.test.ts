/**
 * deploy/coturn/turnserver.conf in a real coturn (Debian's, installed by scripts/ensure-packages.sh)
 * on 127.0.0.1: two PeerLinks that may only use relayed candidates (`iceTransportPolicy: 'relay'`)
 * move frames intact through it with credentials minted by shared/transport/turn-credentials.ts,
 * and a link with a wrong password or expired credentials cannot open. Every address is loopback
 * (the shipped file denies loopback peers; the test allows 127.0.0.1 and nothing else).
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { peerPair, patternFrame, type PeerEnd } from '../../testing/peer-pair.js';
import { startTurnServer, type TurnServer } from '../../testing/turn-server.js';
import { until } from '../../testing/until.js';
import { turnCredentials } from '../../shared/transport/turn-credentials.js';
import { LinkDownError } from '../../shared/transport/link-down-error.js';
import type { Signal } from '../../shared/protocol/signal.js';

let turn: TurnServer;
let SECRET = '';
let ends: PeerEnd[] = [];
const turnLog = () => turn.log();

beforeAll(async () => {
  turn = await startTurnServer();
  SECRET = turn.secret;
});

afterEach(async () => {
  for (const e of ends) e.links.closeAll();
  ends = [];
  await new Promise((r) => setTimeout(r, 200));
});

afterAll(async () => {
  await turn?.stop();
});

async function relayOnly(username: string, credential: string): Promise<RTCConfiguration> {
  return { iceServers: [{ urls: turn.url('udp'), username, credential }], iceTransportPolicy: 'relay' };
}

describe('TURN through coturn (deploy/coturn/turnserver.conf)', () => {
  it('a relay-only PeerLink opens through coturn and moves frames intact both ways', async () => {
    const cred = await turnCredentials(SECRET, 'tab-a', 600);
    const candidates: string[] = [];
    const rtcConfig = await relayOnly(cred.username, cred.credential);
    const [a, b] = (ends = peerPair('a', 'b', {
      rtcConfig,
      linkOptions: { openTimeoutMs: 10_000 },
      deliver: (_f, _t, s: Signal) => {
        if (s.type === 'candidate') candidates.push(s.candidate);
        return true;
      },
    }));
    const frames = [patternFrame(1024, 1), patternFrame(600 * 1024, 2), patternFrame(70_000, 3)];
    const back = patternFrame(300 * 1024, 4);
    const receipts = await Promise.all([...frames.map((f) => a.links.send('b', f)), b.links.send('a', back)]);
    expect(receipts.map((r) => r.bytes)).toEqual([...frames.map((f) => f.byteLength), back.byteLength]);
    await until(() => b.frames.length === 3 && a.frames.length === 1, 'frames through TURN', 10_000);
    frames.forEach((f, i) => expect(Buffer.compare(b.frames[i].frame, f)).toBe(0));
    expect(Buffer.compare(a.frames[0].frame, back)).toBe(0);
    // Only relayed candidates were offered, on the loopback relay address coturn allocated.
    expect(candidates.length).toBeGreaterThan(0);
    for (const c of candidates) expect(c).toMatch(/ 127\.0\.0\.1 \d+ typ relay/);
    // coturn saw the allocations and the permissions between them.
    await until(() => /ALLOCATE processed, success/.test(turnLog()), 'coturn logs the allocation', 5000);
    expect(turnLog()).toMatch(/CREATE_PERMISSION processed, success|CHANNEL_BIND processed, success/);
  });

  it('a wrong password or expired credentials get no relay: the link fails within its open timeout', async () => {
    const good = await turnCredentials(SECRET, 'tab-wrong', 600);
    const expired = await turnCredentials(SECRET, 'tab-expired', 600, Date.now() - 3600_000);
    for (const [user, pass] of [
      [good.username, 'AAAAAAAAAAAAAAAAAAAAAAAAAAA='],
      [expired.username, expired.credential],
    ]) {
      const [a] = (ends = peerPair('a', 'b', { rtcConfig: await relayOnly(user, pass), linkOptions: { openTimeoutMs: 2500 } }));
      const err = await a.links.send('b', patternFrame(100, 1)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LinkDownError);
      expect(['open-timeout', 'ice-failed']).toContain((err as LinkDownError).failure);
      for (const e of ends) e.links.closeAll();
    }
    // coturn refused both (not merely the first, credential-less request every client makes).
    for (const user of [good.username, expired.username]) {
      expect(turnLog()).toMatch(new RegExp(`user <${user.replace('.', '\\.')}>: incoming packet message processed, error 401`));
      expect(turnLog()).not.toContain(`user <${user}>: incoming packet ALLOCATE processed, success`);
    }
  });
});
