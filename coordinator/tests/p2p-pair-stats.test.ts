/**
 * Per-pair link figures (issue 23, docs/p2p.md#measured-per-pair): tabs in `--transport p2p`
 * report each link's ping RTT and frame time in their `stats` heartbeat; the coordinator validates
 * them, shows them in the dashboard's state (`/api/operator/state` -> p2p.pairs) and as Prometheus
 * gauges per stage pair. A tab sending malformed or oversized figures has them dropped (a schema
 * offence) and the run goes on.
 */
import { describe, it, expect } from 'vitest';
import { io as ioClient } from 'socket.io-client';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { startNodeVolunteer } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../../shared/run-settings.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';
import { MAX_PAIR_STATS } from '../../shared/protocol/pair-stats.js';

const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 2, recovery: 'checkfree' };

const harness = testSwarm();

const link = (peer: string, extra: Record<string, unknown> = {}) => ({ peer, state: 'open', rttMs: 1.5, frameMs: 3, framesSent: 4, bytesSent: 1000, framesReceived: 4, bytesReceived: 1000, ...extra });

describe('per-pair link stats', () => {
  it('a p2p swarm reports a non-zero RTT for every pair that exchanged frames; a bad report is dropped and the run goes on', async () => {
    const coord = (harness.coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, evalEvery: 0, maxReplicas: 1, maxIterations: 40, p2p: { transport: 'p2p' } }));
    const url = await coord.listen();
    // Tabs 1 and 3 hold their links across the worker/page bridge, as a browser does (link-bridge.ts's stats op).
    for (let i = 0; i < settings.stages; i++) harness.vols.push(await startNodeVolunteer(url, { name: `t${i}`, ...(i % 2 ? { bridgeLinks: true } : {}) }));
    // Pings go every second: wait for heartbeats (one per step) that carry a measured RTT on every link.
    const routed = () => (coord.operator.snapshot().p2p?.pairs ?? []).filter((p) => p.framesSent > 0);
    await until(() => routed().length >= 2 * (settings.stages - 1) && routed().every((p) => p.rttMs !== null && p.rttMs > 0), 'every used link reporting its RTT', 180_000);
    const pairs = routed();
    // Stage s sends activations to s+1 and gradients to s-1: one link each way per neighbouring pair.
    const stagePairs = new Set(pairs.map((p) => `${p.fromStage}>${p.toStage}`));
    for (let s = 0; s + 1 < settings.stages; s++) {
      expect(stagePairs.has(`${s}>${s + 1}`)).toBe(true);
      expect(stagePairs.has(`${s + 1}>${s}`)).toBe(true);
    }
    for (const p of pairs) {
      expect(p.state).toBe('open');
      expect(p.rttMs!).toBeGreaterThan(0);
      expect(p.rttMs!).toBeLessThan(5000);
      expect(p.frameMs!).toBeGreaterThan(0);
      expect(p.bytesSent).toBeGreaterThan(0);
    }
    const metrics = await coord.metrics.text();
    for (let s = 0; s + 1 < settings.stages; s++) {
      const m = new RegExp(`^swarm_p2p_link_rtt_ms\\{from_stage="${s}",to_stage="${s + 1}"\\} (\\S+)$`, 'm').exec(metrics);
      expect(m, `rtt gauge ${s}>${s + 1}`).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThan(0);
    }

    // A stranger's heartbeats: oversized, out of range, wrong types. Each is an offence; nothing is kept.
    const raw = ioClient(url, { transports: ['websocket'], forceNew: true });
    try {
      const rejected: string[] = [];
      raw.on('rejected' as never, (r: { reason: string }) => void rejected.push(r.reason));
      let id = '';
      raw.on('welcome' as never, (w: { volunteerId: string }) => void (id = w.volunteerId));
      await new Promise<void>((r) => raw.on('connect', () => r()));
      raw.emit('hello' as never, { backend: 'cpu', adapter: null, throughputGflops: 1, agent: 'raw', webrtc: true } as never, (() => {}) as never);
      await until(() => id !== '', 'welcome', 10_000);
      const bad = [
        Array.from({ length: MAX_PAIR_STATS + 1 }, (_, i) => link(`p${i}`)),
        [link('p0', { rttMs: -1 })],
        [link('p0', { frameMs: 1e12 })],
        [link('p0', { rttMs: '3' })],
        [link('x'.repeat(65))],
        [link('p0', { framesSent: 1.5 })],
        [link('p0', { extra: 1 })],
      ];
      const before = coord.scheduler.iteration;
      for (const links of bad) raw.emit('stats' as never, { computeMs: 1, tokensPerSec: 1, links } as never);
      await until(() => rejected.length >= 1 || !coord.registry.get(id), 'the bad heartbeats answered', 10_000);
      expect(coord.registry.get(id)?.stats ?? null).toBeNull();
      // The run goes on.
      await until(() => coord.scheduler.iteration > before, 'an iteration after the bad heartbeats', 60_000);
      expect(coord.operator.snapshot().p2p?.pairs?.some((p) => p.from === id)).toBe(false);
      expect(rejected.every((r) => r === 'schema')).toBe(true);
    } finally {
      raw.close();
    }
  });
});
