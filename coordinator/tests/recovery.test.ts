/** Recovery in a live swarm (coordinator + Node volunteers): every strategy, blips, heartbeats. */
import { describe, it, expect } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Coordinator, DEFAULT_COORDINATOR, type CoordinatorOptions } from '../server.js';
import { startNodeVolunteer, type NodeVolunteer } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RunSettings, type RecoveryStrategy } from '../../shared/run-settings.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';

const base: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 2 };
const harness = testSwarm();

async function swarm(recovery: RecoveryStrategy, tabs: number, extra: Partial<CoordinatorOptions> = {}) {
  const coord = (harness.coord = new Coordinator({
    ...DEFAULT_COORDINATOR,
    maxReplicas: 1, // one tab per stage: extra tabs are spares (these tests exercise the strategy rung)
    settings: { ...base, recovery },
    port: 0,
    silent: true,
    evalEvery: 0,
    graceMs: 300,
    ...extra,
    recovery: { ...DEFAULT_COORDINATOR.recovery, checkpointDir: mkdtempSync(join(tmpdir(), 'ckpt-')), ...extra.recovery },
  }));
  const url = await coord.listen();
  for (let i = 0; i < tabs; i++) harness.vols.push(await startNodeVolunteer(url, { name: `t${i}` }));
  return coord;
}


const volunteerOf = (c: Coordinator, stage: number) => {
  const id = c.stages.owner(stage)!.id;
  return harness.vols.find((v) => v.status().volunteerId === id)!;
};

/** Pauses right after `iteration` completes (inside the iteration hook, so no race). */
async function pauseAt(c: Coordinator, iteration: number): Promise<void> {
  if (c.scheduler.iteration > iteration) throw new Error(`already past iteration ${iteration}`);
  const stop = c.scheduler.observe((r) => {
    if (r.iteration === iteration) c.scheduler.setPaused(true);
  });
  await until(() => c.scheduler.state === 'paused' && c.scheduler.iteration === iteration, `pause at iteration ${iteration}`);
  stop();
}

/** Waits until `stage` is served by a volunteer whose agent has built it. */
async function assigned(c: Coordinator, stage: number, notId?: string): Promise<NodeVolunteer> {
  await until(() => {
    const o = c.stages.owner(stage);
    if (!o || o.id === notId) return false;
    const v = harness.vols.find((x) => x.status().volunteerId === o.id);
    return v?.agent.currentStage?.index === stage;
  }, `stage ${stage} assigned`);
  return volunteerOf(c, stage);
}

function resume(c: Coordinator): void {
  c.scheduler.setPaused(false);
}

describe('recovery in the swarm', () => {
  it('checkfree+: a lost first stage is rebuilt as a copy of stage 1 plus the embedding replica', async () => {
    const c = await swarm('checkfree+', 5, { recovery: { ...DEFAULT_COORDINATOR.recovery, replicaEvery: 2 } });
    await pauseAt(c, 4); // replicas refreshed at iteration 2 and 4
    const s1 = volunteerOf(c, 1).agent.currentStage!.getWeights();
    const embed = volunteerOf(c, 0).agent.currentStage!.getWeights()['embed.weight']!;
    const old = c.stages.owner(0)!.id;
    volunteerOf(c, 0).kill();
    const rebuilt = (await assigned(c, 0, old)).agent.currentStage!;
    const w = rebuilt.getWeights();
    expect(w['blocks.0.attn.wq']).toEqual(s1['blocks.0.attn.wq']);
    expect(w['embed.weight']).toEqual(embed);
    expect(rebuilt.lr).toBeCloseTo(base.lr * 1.1, 10);
    expect(rebuilt.optimizerStep()).toBe(0);
    resume(c);
    await until(() => c.scheduler.iteration >= 6, 'iterations after recovery');
    expect(c.recovery.done[0]).toMatchObject({ stage: 0, method: 'copy', fallback: false });
    expect(c.recovery.done[0]!.sources.map((s) => s.part).sort()).toEqual(['blocks', 'embed-replica']);
  });

  it('checkfree: a lost last stage falls back to seed re-initialisation and says so', async () => {
    const c = await swarm('checkfree', 5);
    await pauseAt(c, 2);
    volunteerOf(c, 3).kill();
    await until(() => c.recovery.done.length + (c.recovery as unknown as { open: unknown[] }).open.length > 0, 'recovery event');
    resume(c);
    await until(() => c.recovery.done.length === 1, 'recovery done');
    expect(c.recovery.done[0]).toMatchObject({ stage: 3, method: 'reinit', fallback: true });
    expect(c.events.list('recovery').some((e) => /FALLBACK to seed re-init/.test(e.message))).toBe(true);
  });

  it('redundant: a lost stage is restored exactly (weights and Adam state) from its predecessor', async () => {
    const c = await swarm('redundant', 5);
    await pauseAt(c, 3);
    const lost = volunteerOf(c, 2).agent.currentStage!;
    const w = lost.getWeights();
    const opt = lost.getOptimizerState();
    const old = c.stages.owner(2)!.id;
    volunteerOf(c, 2).kill();
    const restored = (await assigned(c, 2, old)).agent.currentStage!;
    const w2 = restored.getWeights();
    for (const n of Object.keys(w)) expect(w2[n], n).toEqual(w[n]);
    expect(restored.optimizerStep()).toBe(opt.step);
    expect(restored.getOptimizerState().m['blocks.0.mlp.w_up']).toEqual(opt.m['blocks.0.mlp.w_up']);
    resume(c);
    await until(() => c.scheduler.iteration >= 5, 'iterations after recovery');
    expect(c.recovery.done[0]).toMatchObject({ stage: 2, method: 'redundant', fallback: false });
    expect(await c.metrics.text()).toMatch(/swarm_recovery_bytes_total\{kind="redundant"\} [1-9]/);
  });

  it('checkpoint: the whole swarm rolls back to the last checkpoint and recomputes', async () => {
    const c = await swarm('checkpoint', 5, { recovery: { ...DEFAULT_COORDINATOR.recovery, checkpointEvery: 2 } });
    await pauseAt(c, 5); // checkpoints at 1 (first), 3, 5
    expect(c.recovery.lastCheckpoint?.iteration).toBe(5);
    resume(c);
    await pauseAt(c, 6);
    const stage1 = volunteerOf(c, 1);
    const old = c.stages.owner(2)!.id;
    volunteerOf(c, 2).kill();
    await assigned(c, 2, old);
    await until(() => stage1.agent.currentStage?.optimizerStep() === 5, 'live stages rolled back');
    expect(c.scheduler.iteration).toBe(5);
    expect(stage1.agent.currentStage!.optimizerStep()).toBe(5);
    resume(c);
    await until(() => c.scheduler.iteration >= 7, 'iterations after rollback');
    expect(c.recovery.done[0]).toMatchObject({ stage: 2, method: 'checkpoint', iteration: 6 });
    expect(c.recovery.done[0]!.notes[0]).toMatch(/rolled back 1 iteration/);
  });

  it('a blip shorter than the grace period keeps the stage; a longer one recovers exactly once', async () => {
    const c = await swarm('checkfree', 5, { graceMs: 4000 });
    await until(() => c.scheduler.iteration >= 2, 'iteration 2');
    const v = volunteerOf(c, 1);
    const id = c.stages.owner(1)!.id;
    v.socket.io.engine.close(); // transport drops; socket.io reconnects and recovers the session
    await until(() => c.scheduler.iteration >= 5, 'training continues after the blip');
    expect(c.stages.owner(1)!.id).toBe(id);
    expect(c.recovery.done).toHaveLength(0);
    expect(c.events.list('join').some((e) => /reconnected within the grace period/.test(e.message))).toBe(true);
    v.kill();
    await until(() => c.recovery.done.length >= 1, 'recovery after the grace period', 60_000);
    await until(() => c.scheduler.iteration >= 7, 'training continues');
    expect(c.recovery.done).toHaveLength(1);
  });

  it.each(['grad_norm', 'step'] as const)('a stage lost during the barrier (%s) does not stall the run or step twice', async (phase) => {
    const c = await swarm('checkfree', 5);
    await until(() => c.scheduler.iteration >= 2, 'iteration 2');
    const victim = volunteerOf(c, 2);
    const survivor = volunteerOf(c, 1);
    (victim.socket as unknown as { on(e: string, f: () => void): void }).on(phase, () => victim.kill());
    const t0 = Date.now();
    await until(() => c.recovery.done.length >= 1, 'recovery', 30_000); // far below the 120 s step timeout
    expect(Date.now() - t0).toBeLessThan(30_000);
    await pauseAt(c, c.scheduler.iteration + 1);
    // One Adam step per completed iteration on a tab that was there all along: nothing applied twice.
    expect(survivor.agent.currentStage!.optimizerStep()).toBe(c.scheduler.iteration);
  });

  it('a frozen tab (no heartbeat answers) is detected by the heartbeat timeout and recovered', async () => {
    // A heartbeat timeout generous enough that honest tabs sharing this busy test process never
    // miss one; two spares so a slow machine cannot run out of them.
    const c = await swarm('checkfree', 6, { heartbeatTimeoutMs: 4000, graceMs: 100 });
    await until(() => c.scheduler.iteration >= 1, 'iteration 1');
    const frozenId = c.stages.owner(2)!.id;
    const v = volunteerOf(c, 2);
    const engine = v.socket.io.engine as unknown as { _sendPacket: (type: string, ...rest: unknown[]) => void };
    const send = engine._sendPacket.bind(engine);
    engine._sendPacket = (type, ...rest) => {
      if (type !== 'pong') send(type, ...rest);
    };
    v.socket.io.reconnection(false);
    await until(() => c.events.list('leave').some((e) => e.data?.volunteer === frozenId), 'the frozen tab dropped', 60_000);
    expect(c.events.list('leave').find((e) => e.data?.volunteer === frozenId)!.message).toMatch(/ping timeout/);
    await until(() => c.recovery.done.some((r) => r.stage === 2), 'recovery of the frozen stage', 120_000);
    expect(c.recovery.done.find((r) => r.stage === 2)).toMatchObject({ method: 'average' });
    expect(c.events.list('quarantine')).toEqual([]); // honest tabs are never mistaken for poisoned ones
  });
});
