/**
 * Overlap: with latency on every hop the scheduler widens its in-flight window beyond 1F1B's
 * depth from what it measured (in-flight-window.ts), and the numbers stay the local trainer's.
 */
import { describe, it, expect } from 'vitest';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { startNodeVolunteer } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../../shared/run-settings.js';
import { trainLocal } from '../../trainer/cli.js';
import { useNodeBackend } from '../../trainer/node-backend.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';

// 2 stages, 8 microbatches: 1F1B depth 2, so the window has room to grow; swapped paths included.
const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 2, microbatches: 8, batch: 2, recovery: 'checkfree+' };

const harness = testSwarm();

describe('in-flight window on slow links', () => {
  it('widens past 1F1B depth once round trips are measured, and the loss still equals the local trainer', async () => {
    const N = 3;
    harness.coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, evalEvery: 0, maxIterations: N, maxReplicas: 1, maxInFlight: 8, publicHosts: ['localhost', '127.0.0.1'] });
    const url = await harness.coord.listen();
    // 60 ms each way: a hop's round trip (>= 120 ms) dwarfs a tiny stage's compute.
    const link = { upMbps: 100, downMbps: 100, latencyMs: 60 };
    for (let i = 0; i < settings.stages; i++) harness.vols.push(await startNodeVolunteer(url, { name: `o${i}`, link }));
    await until(() => harness.coord!.scheduler.iteration >= N, `${N} iterations`, 180_000);
    const w = harness.coord.scheduler.lastWindow!;
    expect(w.depth).toBe(2);
    expect(w.wanted).not.toBeNull();
    expect(w.size).toBeGreaterThan(w.depth);
    expect(w.size).toBeLessThanOrEqual(settings.microbatches);
    expect(await harness.coord.metrics.text()).toMatch(new RegExp(`swarm_in_flight_window ${w.size}\\b`));

    const swarm = harness.coord.scheduler.history.map((h) => h.trainLoss);
    await useNodeBackend('wasm');
    const local = await trainLocal({ ...settings, steps: N, evalEvery: 1000, evalBatches: 1, swap: true });
    expect(swarm).toHaveLength(N);
    for (let i = 0; i < N; i++) expect(Math.abs(swarm[i]! - local.trainLosses[i]!) / local.trainLosses[i]!).toBeLessThan(1e-4);
  }, 240_000);
});
