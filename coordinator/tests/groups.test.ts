/**
 * Several tabs per stage: exact data parallelism inside a stage, routing by measured speed,
 * placement on the bottleneck, and the recovery ladder (replica, handoff, strategy), through a
 * real coordinator and Node volunteers over socket.io.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { Coordinator, DEFAULT_COORDINATOR, type CoordinatorOptions } from '../server.js';
import { startNodeVolunteer, type NodeVolunteer, type NodeVolunteerOptions } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../../shared/run-settings.js';
import { trainLocal } from '../../trainer/cli.js';
import { useNodeBackend } from '../../trainer/node-backend.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';
import { Stage } from '../../shared/model/stage.js';
import type { GradNorms } from '../../shared/model/stage.js';

/** A stage whose every step lands one ulp off in one weight: what another device's rounding does. */
class DriftingStage extends Stage {
  override async clipAndStepAsync(): Promise<GradNorms> {
    const norms = await super.clipAndStepAsync();
    const w = this.getWeights();
    const name = Object.keys(w)[0]!;
    const bumped = Float32Array.from(w[name]!);
    new Uint32Array(bumped.buffer)[0]! += 1;
    this.setWeights({ [name]: bumped }, { partial: true });
    return norms;
  }
}

const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 4, batch: 2, recovery: 'checkfree' };

const harness = testSwarm();
let reference: number[] = [];

const N = 5;

beforeAll(async () => {
  await useNodeBackend('wasm');
  reference = (await trainLocal({ ...settings, steps: N + 2, evalEvery: 1000, evalBatches: 1, swap: false })).trainLosses;
}, 240_000);

async function startSwarm(extra: Partial<CoordinatorOptions> = {}) {
  const coord = (harness.coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, evalEvery: 0, ...extra }));
  const url = await coord.listen();
  return { coord, url };
}

async function join(url: string, name: string, opts: NodeVolunteerOptions = {}): Promise<NodeVolunteer> {
  const v = await startNodeVolunteer(url, { name, ...opts });
  harness.vols.push(v);
  return v;
}

/**
 * `n` tabs join while the run is paused: nothing is measured yet, so placement fills the groups
 * evenly (n / stages each); then training starts.
 */
async function joinEvenly(c: Coordinator, url: string, n: number, opts: NodeVolunteerOptions = {}): Promise<void> {
  c.scheduler.setPaused(true);
  for (let i = 0; i < n; i++) await join(url, `t${i}`, opts);
  await until(() => c.stages.activeCount() === n, `all ${n} tabs placed`, 60_000);
  c.scheduler.setPaused(false);
  c.scheduler.kick();
}

/** The Node volunteer behind a coordinator-side tab. */
const nodeOf = (id: string) => harness.vols.find((v) => v.status().volunteerId === id)!;

function expectOnReferenceCurve(c: Coordinator, n: number): void {
  const losses = c.scheduler.history.map((h) => h.trainLoss);
  expect(losses.length).toBeGreaterThanOrEqual(n);
  for (let i = 0; i < n; i++) expect(Math.abs(losses[i]! - reference[i]!) / reference[i]!).toBeLessThan(1e-4);
}

describe('groups of replicas per stage', () => {
  it('8 tabs on 4 stages: every tab trains, the loss equals the local trainer, replicas stay bit-identical', async () => {
    const { coord, url } = await startSwarm({ maxIterations: N, rebalanceEvery: 0 });
    await joinEvenly(coord, url, 8);
    await until(() => coord.scheduler.iteration >= N, `${N} iterations`, 180_000);
    for (let s = 0; s < 4; s++) expect(coord.stages.size(s)).toBe(2);
    expect(coord.placement.spares()).toHaveLength(0);
    expectOnReferenceCurve(coord, N);
    for (let s = 0; s < 4; s++) {
      const [a, b] = coord.stages.replicas(s).map((v) => nodeOf(v.id).agent.currentStage!);
      // Both replicas ran microbatches, and after the shared steps hold the same bits.
      expect(coord.stages.replicas(s).every((v) => coord.speeds.done(v) > 0)).toBe(true);
      const wa = a!.getWeights();
      const wb = b!.getWeights();
      for (const name of Object.keys(wa)) expect(Buffer.from(wa[name]!.buffer).equals(Buffer.from(wb[name]!.buffer))).toBe(true);
    }
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/swarm_volunteers\{state="active"\} 8/);
    expect(metrics).toMatch(/swarm_stage_replicas\{stage="2"\} 2/);
    expect(metrics).toMatch(/swarm_reduction_bytes_total [1-9]\d*/);
    // Each tab knows its place in its group.
    await until(() => harness.vols.every((v) => v.status().group?.of === 2), 'group notices', 10_000);
  });

  it('a replica killed mid-iteration: nothing rebuilt, the iteration completes on the no-failure curve', async () => {
    const { coord, url } = await startSwarm({ maxIterations: N, rebalanceEvery: 0 });
    await joinEvenly(coord, url, 8, { paceMs: 40 });
    await until(() => coord.scheduler.iteration >= 2, 'two iterations', 180_000);
    // Kill a replica of stage 2 while the iteration's microbatches are in flight.
    await until(() => coord.scheduler.state === 'running' && coord.stages.replicas(2).some((v) => coord.speeds.queued(v) > 0), 'work in flight on stage 2', 30_000);
    const victim = coord.stages.replicas(2).find((v) => coord.speeds.done(v) > 0)!;
    const abandonedBefore = (await coord.metrics.abandoned.get()).values[0]?.value ?? 0;
    nodeOf(victim.id).kill();
    await until(() => coord.scheduler.iteration >= N, `${N} iterations`, 180_000);
    expect(coord.recovery.done.filter((r) => r.rung === 'strategy')).toEqual([]);
    expect(coord.recovery.done.some((r) => r.rung === 'replica' && r.stage === 2)).toBe(true);
    expect((await coord.metrics.abandoned.get()).values[0]?.value ?? 0).toBe(abandonedBefore);
    expectOnReferenceCurve(coord, N);
    expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/swarm_recoveries_total\{rung="replica",method="replica"\} 1/);
  });

  it('replicas lost at the barrier, before their gradient was combined and during the step: nothing thrown away, on the no-failure curve', async () => {
    const { coord, url } = await startSwarm({ maxIterations: N, rebalanceEvery: 0, graceMs: 300 });
    await joinEvenly(coord, url, 8);
    await until(() => coord.scheduler.iteration >= 1, 'one iteration', 180_000);
    // Stage 2's victim dies when asked for its gradient (its hops must run again on its sibling);
    // stage 1's when told to step (its sibling holds the combined gradient and steps alone).
    const dieOn = (stage: number, event: 'get_grads' | 'step') => {
      const v = coord.stages.replicas(stage).find((r) => coord.speeds.done(r) > 0)!;
      const node = nodeOf(v.id);
      node.socket.off(event);
      node.socket.on(event, () => node.kill());
      return v;
    };
    const atGrads = dieOn(2, 'get_grads');
    const atStep = dieOn(1, 'step');
    const abandonedBefore = (await coord.metrics.abandoned.get()).values[0]?.value ?? 0;
    await until(() => coord.scheduler.iteration >= N, `${N} iterations`, 180_000);
    expect(coord.stages.replicas(2)).not.toContain(atGrads);
    expect(coord.stages.replicas(1)).not.toContain(atStep);
    expect((await coord.metrics.abandoned.get()).values[0]?.value ?? 0).toBe(abandonedBefore);
    expect(coord.recovery.done.filter((r) => r.rung === 'strategy')).toEqual([]);
    expect(coord.events.list('recovery').some((e) => /hop task\(s\) of lost replica\(s\) ran again on their siblings at the barrier/.test(e.message))).toBe(true);
    expectOnReferenceCurve(coord, N);
  });

  it('a replica that rounds differently (another GPU or backend) is found by its fingerprint and re-synced', async () => {
    const { coord, url } = await startSwarm({ maxIterations: 4, rebalanceEvery: 0, replicaSyncEvery: 2 });
    coord.scheduler.setPaused(true);
    for (let i = 0; i < 7; i++) await join(url, `t${i}`);
    // Joins last, so its group's first replica is an honest one: the tie goes to it.
    await join(url, 'drifter', { createStage: (c, i, o) => new DriftingStage(c, i, o) });
    await until(() => coord.stages.activeCount() === 8, 'all 8 tabs placed', 60_000);
    coord.scheduler.setPaused(false);
    coord.scheduler.kick();
    // It drifts at every step; compared after iterations 2 and 4, re-synced both times.
    const resyncEvents = () => coord.events.list('run').filter((e) => e.data?.resync === true);
    await until(() => resyncEvents().length === 2, 'two re-syncs', 180_000);
    const drifter = coord.registry.all().find((v) => v.caps.agent.includes('drifter'))!;
    const group = coord.stages.replicas(drifter.stage!);
    const [a, b] = group.map((v) => nodeOf(v.id).agent.currentStage!.getWeights());
    for (const name of Object.keys(a!)) expect(Buffer.from(a![name]!.buffer).equals(Buffer.from(b![name]!.buffer)), name).toBe(true);
    const resyncs = resyncEvents();
    expect(((await coord.metrics.replicaResyncs.get()).values[0]?.value)).toBe(2);
    expect(resyncs.every((e) => (e.data!.drifted as string[]).join() === drifter.id && e.data!.source === group.find((v) => v !== drifter)!.id)).toBe(true);
    expect(await coord.metrics.text()).toMatch(/swarm_recovery_bytes_total\{kind="resync"\} [1-9]/);
    expectOnReferenceCurve(coord, 4);
  });

  it('every replica of a stage killed: the configured strategy rebuilds it', async () => {
    const { coord, url } = await startSwarm({ rebalanceEvery: 0 });
    await joinEvenly(coord, url, 8);
    await until(() => coord.scheduler.iteration >= 2, 'two iterations', 180_000);
    const group = coord.stages.replicas(1);
    expect(group).toHaveLength(2);
    for (const v of group) nodeOf(v.id).kill();
    // Nobody waits as a spare: a replica of another group takes the rebuilt stage.
    await until(() => coord.recovery.done.some((r) => r.rung === 'strategy' && r.stage === 1), 'the strategy rebuilt stage 1', 120_000);
    expect(coord.recovery.done.find((r) => r.rung === 'strategy')!.method).toBe('average');
    expect(coord.stages.size(1)).toBe(1);
    expect(coord.events.list('assign').some((e) => e.data?.move === true && e.data?.to === 1)).toBe(true);
    const it0 = coord.scheduler.iteration;
    // A newcomer joins a group of a single tab and the run continues.
    await join(url, 'newcomer');
    await until(() => coord.scheduler.iteration >= it0 + 2 && coord.placement.waitingCount() === 0, 'training after the rebuild', 120_000);
    expect(coord.stages.activeCount()).toBe(7);
  });

  it('a paced slow tab gets fewer microbatches than its fast sibling; a new tab joins the bottleneck', async () => {
    const { coord, url } = await startSwarm({ rebalanceEvery: 0, maxIterations: 5 });
    // Pacing (not this machine's CPU) sets each tab's speed: fast tabs 150 ms a task, the slow one 1.2 s.
    for (let i = 0; i < 4; i++) await join(url, `fast${i}`, { paceMs: 150 });
    await until(() => coord.stages.ready(), 'every stage served', 30_000);
    const slow = await join(url, 'slow', { paceMs: 1200 });
    await until(() => coord.registry.all().some((v) => v.caps.agent.includes('slow') && v.stage !== null), 'the slow tab placed', 60_000);
    const slowTab = coord.registry.all().find((v) => v.caps.agent.includes('slow'))!;
    await until(() => coord.scheduler.iteration >= 5, 'five iterations', 180_000);
    const stage = slowTab.stage!;
    const sibling = coord.stages.replicas(stage).find((v) => v !== slowTab)!;
    expect(coord.speeds.done(sibling)).toBeGreaterThan(coord.speeds.done(slowTab));
    expect(slow.status().stage).toBe(stage);
    // The slow tab's stage has two tabs, the others one each: the bottleneck is a single-tab stage,
    // and that is where a newcomer goes.
    expect(coord.stages.size(coord.placement.bottleneck()!)).toBe(1);
    coord.scheduler.opts.maxIterations = 7;
    coord.scheduler.kick();
    await join(url, 'newcomer', { paceMs: 150 });
    await until(() => coord.registry.all().some((v) => v.caps.agent.includes('newcomer') && v.stage !== null), 'the newcomer placed', 60_000);
    const newcomer = coord.registry.all().find((v) => v.caps.agent.includes('newcomer'))!;
    expect(newcomer.stage).not.toBe(stage);
    expect(coord.stages.size(newcomer.stage!)).toBe(2);
  });

  it('Stop on the last replica of a stage hands its exact state to the next tab: the loss stays on the curve', async () => {
    const { coord, url } = await startSwarm({ maxIterations: N, rebalanceEvery: 0, maxReplicas: 1 });
    for (let i = 0; i < 4; i++) await join(url, `t${i}`);
    await until(() => coord.scheduler.iteration >= 2, 'two iterations', 180_000);
    const leaver = nodeOf(coord.stages.owner(3)!.id);
    await leaver.leave();
    await until(() => coord.stages.isVacant(3) && coord.stages.pendingFor(3)?.reason === 'handoff', 'the handed-over state', 30_000);
    await join(url, 'next');
    await until(() => coord.scheduler.iteration >= N, `${N} iterations`, 180_000);
    expect(coord.recovery.done.filter((r) => r.rung === 'strategy')).toEqual([]);
    expect(coord.recovery.done.some((r) => r.rung === 'handoff' && r.stage === 3)).toBe(true);
    expectOnReferenceCurve(coord, N);
  });
});
