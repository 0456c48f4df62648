/**
 * The swarm in one process: a real coordinator (HTTP + socket.io on a free port) and simulated
 * volunteers (Node socket.io clients running the same VolunteerAgent as the browser worker).
 */
import { describe, it, expect } from 'vitest';
import { io as ioClient } from 'socket.io-client';
import { Coordinator, DEFAULT_COORDINATOR, type CoordinatorOptions } from '../server.js';
import { startNodeVolunteer } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../../shared/run-settings.js';
import { trainLocal } from '../../trainer/cli.js';
import { useNodeBackend } from '../../trainer/node-backend.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';
import type { PruningSessionAdapter } from '../gateway/session-adapter.js';

const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 2, recovery: 'checkfree' };

const harness = testSwarm();

async function startSwarm(s: RunSettings, tabs: number, extra: Partial<CoordinatorOptions> = {}) {
  const coord = (harness.coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings: s, port: 0, silent: true, evalEvery: 0, maxReplicas: 1, ...extra }));
  const url = await coord.listen();
  for (let i = 0; i < tabs; i++) harness.vols.push(await startNodeVolunteer(url, { name: `t${i}` }));
  return { coord, url };
}

describe('swarm over socket.io', () => {
  it.each([
    ['checkfree (in-order paths)', 'checkfree' as const, false],
    ['checkfree+ (swapped odd microbatches)', 'checkfree+' as const, true],
  ])('matches the local trainer loss curve: %s', async (_name, recovery, swap) => {
    const s = { ...settings, recovery };
    const N = 4;
    const { coord } = await startSwarm(s, 4, { maxIterations: N });
    await until(() => coord.scheduler.iteration >= N, `${N} iterations`, 180_000);
    const swarm = coord.scheduler.history.map((h) => h.trainLoss);
    await useNodeBackend('wasm');
    const local = await trainLocal({ ...s, steps: N, evalEvery: 1000, evalBatches: 1, swap });
    expect(swarm).toHaveLength(N);
    for (let i = 0; i < N; i++) expect(Math.abs(swarm[i]! - local.trainLosses[i]!) / local.trainLosses[i]!).toBeLessThan(1e-4);
  });

  it('waits for volunteers, assigns spares, reports metrics and validation loss', async () => {
    const { coord, url } = await startSwarm(settings, 3, { maxIterations: 2, evalEvery: 2 });
    await until(() => coord.scheduler.status().needed === 1, 'waiting state', 10_000);
    expect(coord.scheduler.status().state).toBe('waiting');
    expect(coord.scheduler.iteration).toBe(0);
    harness.vols.push(await startNodeVolunteer(url, { name: 't3' }));
    harness.vols.push(await startNodeVolunteer(url, { name: 'spare' }));
    await until(() => coord.scheduler.iteration >= 2 && coord.scheduler.lastValLoss !== null, 'iterations', 120_000);
    const spares = coord.placement.spares();
    expect(spares).toHaveLength(1);
    // Every stage reports its own throughput (not only the one holding the embedding).
    for (const v of coord.registry.all().filter((x) => x.stage !== null)) expect(v.stats?.tokensPerSec ?? 0).toBeGreaterThan(0);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/swarm_volunteers\{state="active"\} 4/);
    expect(metrics).toMatch(/swarm_volunteers\{state="spare"\} 1/);
    expect(metrics).toMatch(/swarm_stages 4/);
    expect(metrics).toMatch(/swarm_iteration 2/);
    expect(metrics).toMatch(/swarm_stage_backend\{stage="0",backend="wasm"\} 1/);
    expect(metrics).toMatch(/swarm_relay_bytes_total\{direction="forward"\} \d+/);
    expect(metrics).toMatch(/swarm_iteration_seconds_count 2/);
    expect(metrics).toMatch(/swarm_tokens_total 512/);
    const val = Number(/swarm_val_loss ([\d.]+)/.exec(metrics)![1]);
    expect(val).toBeCloseTo(coord.scheduler.lastValLoss!, 4);
    // The replay log of connection-state recovery keeps only the grace period's packets.
    const adapter = coord.io.of('/').adapter as unknown as PruningSessionAdapter;
    await new Promise((r) => setTimeout(r, DEFAULT_COORDINATOR.graceMs + 100));
    coord.io.emit('run_status', coord.scheduler.status());
    expect(adapter.retainedPackets()).toBe(1);
    const health = await (await fetch(`${url}/healthz`)).json();
    expect(health).toMatchObject({ ok: true, iteration: 2 });
  });

  it('rejects garbage with an error event, disconnects the sender and keeps running', async () => {
    const { coord, url } = await startSwarm(settings, 4, { maxIterations: 3 });
    const bad = ioClient(url, { transports: ['websocket'], forceNew: true });
    const rejected: string[] = [];
    bad.on('rejected' as never, (r: { reason: string }) => void rejected.push(r.reason));
    const disconnected = new Promise<void>((r) => bad.on('disconnect', () => r()));
    await new Promise<void>((r) => bad.on('connect', () => r()));
    bad.emit('hello' as never, { backend: 'webgpu', adapter: null, throughputGflops: 5, agent: 'evil' } as never, (() => {}) as never);
    await until(() => coord.registry.all().length === 5, 'bad client registered', 10_000);
    // Three offences (the default --max-offences) get the tab disconnected.
    for (let i = 0; i < 3; i++) {
      bad.emit('out' as never, { attempt: 1, iteration: 0, mb: 0, dir: 'F', hop: 0, computeMs: 1, extra: 'x' } as never, new Uint8Array([1, 2, 3]) as never);
    }
    await disconnected;
    expect(rejected).toContain('schema');
    await until(() => coord.scheduler.iteration >= 3, 'training continues', 120_000);
    expect(await coord.metrics.text()).toMatch(/swarm_rejected_messages_total\{reason="schema"\} 3/);
    bad.close();
  });

  it('rebuilds a lost intermediate stage from its neighbours on a spare (checkfree) and continues', async () => {
    const { coord } = await startSwarm(settings, 5, { maxIterations: 6, graceMs: 200 });
    await until(() => coord.scheduler.iteration >= 2, '2 iterations', 120_000);
    const victim = coord.stages.owner(2)!;
    const v = harness.vols.find((x) => x.status().volunteerId === victim.id)!;
    v.kill();
    await until(() => coord.scheduler.iteration >= 6, 'iterations after recovery', 180_000);
    const rec = coord.recovery.done;
    expect(rec).toHaveLength(1);
    expect(rec[0]).toMatchObject({ stage: 2, method: 'average', fallback: false });
    expect(rec[0]!.sources.map((s) => s.stage).sort()).toEqual([1, 3]);
    expect(rec[0]!.seconds).toBeGreaterThan(0);
    expect(coord.stages.owner(2)!.id).not.toBe(victim.id);
    const metrics = await coord.metrics.text();
    expect(metrics).toMatch(/swarm_recoveries_total\{rung="strategy",method="average"\} 1/);
    expect(metrics).toMatch(/swarm_recovery_seconds_count 1/);
  });
});
