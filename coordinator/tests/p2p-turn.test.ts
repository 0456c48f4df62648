/**
 * `--transport p2p` through a real TURN server: a coordinator handing out `turn:` ICE servers
 * with per-tab credentials (--ice-server, --turn-secret), and Node volunteers whose only ICE
 * candidates are relayed (`iceTransportPolicy: 'relay'`), so every activation and gradient goes
 * tab -> coturn -> tab. Training equals the local trainer, the coordinator relays no frame, and
 * coturn logs the allocations made with the coordinator's credentials. coturn comes from
 * scripts/ensure-packages.sh (scripts/test.sh runs it); without it the suite is skipped, saying so.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { startNodeVolunteer } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../../shared/run-settings.js';
import { trainLocal } from '../../trainer/cli.js';
import { useNodeBackend } from '../../trainer/node-backend.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';
import { wireFrameBytes } from '../../shared/protocol/wire-encoding.js';
import { wireOf } from '../../shared/run-settings.js';
import { LOOPBACK_ONLY } from '../../trainer/node-webrtc.js';
import { startTurnServer, turnServerBinary, type TurnServer } from '../../testing/turn-server.js';

const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 2, recovery: 'checkfree' };
const harness = testSwarm();
const installed = turnServerBinary() !== null;
if (!installed) console.warn('p2p-turn.test.ts skipped: turnserver (Debian coturn) is not installed; run `bash scripts/ensure-packages.sh`');

let turn: TurnServer | null = null;
afterAll(async () => {
  await turn?.stop();
});

async function counter(coord: Coordinator, name: string): Promise<Map<string, number>> {
  const text = await coord.metrics.text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) out.set(m[1] ?? '', Number(m[2]));
  return out;
}

describe.skipIf(!installed)('--transport p2p through coturn (relayed candidates only)', () => {
  it('trains as the local trainer with every frame relayed by TURN, none by the coordinator', async () => {
    turn = await startTurnServer();
    const N = 3;
    const coord = (harness.coord = new Coordinator({
      ...DEFAULT_COORDINATOR,
      settings,
      port: 0,
      silent: true,
      evalEvery: 0,
      maxReplicas: 1,
      maxIterations: N,
      p2p: { transport: 'p2p', iceServers: [turn.url('udp')], turnSecret: turn.secret },
    }));
    const url = await coord.listen();
    const candidates: string[] = [];
    const relayOnly = { ...LOOPBACK_ONLY, iceTransportPolicy: 'relay' } as RTCConfiguration;
    for (let i = 0; i < 4; i++) {
      const v = await startNodeVolunteer(url, { name: `r${i}`, rtcExtra: relayOnly });
      v.socket.on('p2p-signal', (s: { signal: { type: string; candidate?: string } }) => {
        if (s.signal.type === 'candidate' && s.signal.candidate) candidates.push(s.signal.candidate);
      });
      harness.vols.push(v);
    }
    await until(() => coord.scheduler.iteration >= N, `${N} iterations through TURN`, 180_000);
    const swarm = coord.scheduler.history.map((h) => h.trainLoss);
    await useNodeBackend('wasm');
    const local = await trainLocal({ ...settings, steps: N, evalEvery: 1000, evalBatches: 1, swap: false });
    expect(swarm).toHaveLength(N);
    for (let i = 0; i < N; i++) expect(Math.abs(swarm[i]! - local.trainLosses[i]!) / local.trainLosses[i]!).toBeLessThan(1e-4);
    const frame = wireFrameBytes([settings.batch, 64, 64], wireOf(settings));
    const p2p = await counter(coord, 'swarm_p2p_bytes_total');
    const relay = await counter(coord, 'swarm_relay_bytes_total');
    expect(p2p.get('{direction="forward"}')).toBe(N * 2 * 3 * frame);
    expect(p2p.get('{direction="backward"}')).toBe(N * 2 * 3 * frame);
    expect(relay.get('{direction="forward"}') ?? 0).toBe(0);
    expect(relay.get('{direction="backward"}') ?? 0).toBe(0);
    expect([...(await counter(coord, 'swarm_p2p_fallbacks_total')).values()].reduce((a, b) => a + b, 0)).toBe(0);
    // Only relayed candidates crossed the signalling, and coturn allocated for the tabs with the
    // coordinator's time-limited credentials (`<expiry>.<volunteer id>`).
    expect(candidates.length).toBeGreaterThan(0);
    for (const c of candidates) expect(c).toMatch(/ typ relay/);
    const ids = coord.registry.all().map((v) => v.id);
    const allocated = ids.filter((id) => new RegExp(`user <\\d+\\.${id}>: incoming packet ALLOCATE processed, success`).test(turn!.log()));
    expect(allocated.length).toBe(4);
  }, 240_000);
});
