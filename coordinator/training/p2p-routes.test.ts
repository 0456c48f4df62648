/** P2pRoutes: which outputs go peer to peer, which pairs may signal, fallbacks and auto's back-off. */
import { describe, it, expect } from 'vitest';
import { P2pRoutes, DEFAULT_P2P_ROUTES } from './p2p-routes.js';
import type { Transport } from '../../shared/protocol/p2p-messages.js';
import { SwarmMetrics } from '../record/metrics.js';
import type { StageTable } from '../placement/stage-table.js';
import type { Volunteer } from '../tabs/registry.js';
import type { P2pAuditDeps } from '../screening/p2p-audit.js';

const tab = (id: string, webrtc = true) => ({ id, caps: { webrtc } }) as unknown as Volunteer;

function routes(transport: Transport, groups: Volunteer[][]) {
  let now = 1_000_000;
  const stages = { replicas: (s: number) => groups[s] ?? [] } as unknown as StageTable;
  const r = new P2pRoutes({ ...DEFAULT_P2P_ROUTES, transport }, { stages, metrics: new SwarmMetrics(), audit: {} as P2pAuditDeps, now: () => now });
  return { r, advance: (ms: number) => (now += ms) };
}

describe('P2pRoutes', () => {
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((id) => tab(id));

  it('routes an output peer to peer only into a single-replica stage, between two WebRTC tabs, not in relay mode', () => {
    expect(routes('relay', [[a], [b]]).r.receiverFor(a, 1)).toBeNull();
    const { r } = routes('p2p', [[a], [b], [c, d], [tab('x', false)]]);
    expect(r.receiverFor(a, 1)).toBe(b);
    expect(r.receiverFor(b, 2)).toBeNull(); // siblings: the coordinator keeps the inputs
    expect(r.receiverFor(b, 3)).toBeNull(); // no WebRTC
    expect(r.receiverFor(a, 0)).toBeNull(); // itself
    expect(r.fallbacks.get('unsupported')).toBe(1);
    expect(r.mayTalk('a', 'b')).toBe(true);
    expect(r.mayTalk('b', 'a')).toBe(true);
    expect(r.mayTalk('b', 'c')).toBe(false);
    r.forget(b);
    expect(r.mayTalk('a', 'b')).toBe(false);
  });

  it('auto: a failing pair is relay-only for 60 s, doubling per failure in a row, reset by a delivered frame', () => {
    const { r, advance } = routes('auto', [[a], [b]]);
    expect(r.receiverFor(a, 1)).toBe(b);
    r.fellBack(a, b, 'open-timeout');
    expect(r.receiverFor(a, 1)).toBeNull();
    expect(r.fallbacks.get('backoff')).toBe(1);
    expect(r.backedOff()).toEqual([{ pair: 'a|b', ms: 60_000, failures: 1 }]);
    advance(60_001);
    expect(r.receiverFor(a, 1)).toBe(b);
    r.fellBack(b, a, 'silent');
    expect(r.backedOff()[0]).toMatchObject({ ms: 120_000, failures: 2 });
    advance(120_001);
    r.delivered(a, b);
    r.fellBack(a, b, 'peer-closed');
    expect(r.backedOff()[0]).toMatchObject({ ms: 60_000, failures: 1 });
    expect(r.fallbacks.get('open-timeout')).toBe(1);
  });

  it('p2p: a failing pair tries again with the next frame', () => {
    const { r } = routes('p2p', [[a], [b]]);
    r.receiverFor(a, 1);
    r.fellBack(a, b, 'open-timeout');
    expect(r.receiverFor(a, 1)).toBe(b);
    expect(r.backedOff()).toEqual([]);
  });
});
