/**
 * SkipPipe in the swarm (docs/skippipe.md): a Node swarm whose training microbatches follow skip
 * paths matches the local trainer replaying the schedule the coordinator recorded (< 1e-4
 * relative, as full paths do in swarm.test.ts), a stage no microbatch visited takes no optimizer
 * step, and validation still runs the full model.
 */
import { describe, it, expect } from 'vitest';
import { Coordinator, DEFAULT_COORDINATOR, type CoordinatorOptions } from '../server.js';
import { startNodeVolunteer } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../../shared/run-settings.js';
import { trainLocal } from '../../trainer/cli.js';
import { useNodeBackend } from '../../trainer/node-backend.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';
import { Stage } from '../../shared/model/stage.js';
import { parseRecordedSchedule } from '../../shared/schedule/recorded-schedule.js';
import type { SchedulerKind } from '../../shared/schedule/skip-request.js';

const harness = testSwarm();

async function startSwarm(s: RunSettings, tabs: number, extra: Partial<CoordinatorOptions>) {
  const coord = (harness.coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings: s, port: 0, silent: true, evalEvery: 0, maxReplicas: 1, ...extra }));
  const url = await coord.listen();
  const created: Stage[] = [];
  const createStage = (c: ConstructorParameters<typeof Stage>[0], i: number, o: { lr: number }) => {
    const st = new Stage(c, i, o);
    created.push(st);
    return st;
  };
  for (let i = 0; i < tabs; i++) harness.vols.push(await startNodeVolunteer(url, { name: `t${i}`, createStage }));
  return { coord, url, created };
}

describe('swarm with SkipPipe paths', () => {
  it.each([
    // M = 1 with 2 open intermediates and one per path: every iteration leaves one stage out.
    ['checkfree, random schedule, one microbatch (a stage sits out each iteration)', 'checkfree' as const, false, 'random' as SchedulerKind, 1],
    ['checkfree+, collision-aware schedule, swapped odd microbatches', 'checkfree+' as const, true, 'collision' as SchedulerKind, 3],
  ])('matches the local trainer replaying the recorded schedule: %s', async (_name, recovery, swap, scheduler, microbatches) => {
    const s: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches, batch: 2, recovery };
    const N = 5;
    const { coord, url, created } = await startSwarm(s, 4, { maxIterations: N, skipRatio: 0.25, skipSchedule: scheduler, evalEvery: N, evalBatches: 1 });
    await until(() => coord.scheduler.iteration >= N && coord.scheduler.lastValLoss !== null, `${N} iterations`, 180_000);
    const history = coord.scheduler.history;
    expect(history).toHaveLength(N);
    // The recorded schedule comes from the operator API and passes the schedule file's checks;
    // every path skips one of the 4 stages (round(0.25 x 4)), and the records' visits agree.
    const res = await fetch(`${url}/api/operator/schedule`, { headers: { authorization: `Bearer ${coord.operatorToken}` } });
    expect(res.status).toBe(200);
    const schedule = parseRecordedSchedule(await res.text());
    expect(schedule.iterations).toHaveLength(N);
    for (const [i, it] of schedule.iterations.entries()) {
      for (const p of it.paths) expect(p).toHaveLength(3);
      expect(history[i]!.skip!.visits).toEqual([0, 1, 2, 3].map((st) => it.paths.filter((p) => p.includes(st)).length));
    }

    // A stage no microbatch visited did not step: each stage's Adam step count is its visited iterations.
    const visitedIterations = [0, 1, 2, 3].map((st) => history.filter((h) => h.skip!.visits[st]! > 0).length);
    if (microbatches === 1) expect(visitedIterations.slice(1, 3).every((n) => n < N)).toBe(true);
    for (const st of created) expect(st.optimizerStep()).toBe(visitedIterations[st.index]);

    await useNodeBackend('wasm');
    const local = await trainLocal({ ...s, steps: N, evalEvery: N, evalBatches: 1, swap, recorded: schedule });
    const swarm = history.map((h) => h.trainLoss);
    for (let i = 0; i < N; i++) expect(Math.abs(swarm[i]! - local.trainLosses[i]!) / local.trainLosses[i]!).toBeLessThan(1e-4);
    // Validation runs the full model on both sides.
    expect(Math.abs(coord.scheduler.lastValLoss! - local.finalValLoss) / local.finalValLoss).toBeLessThan(1e-4);
  });

  it('trains through a vacant intermediate stage, then rebuilds it from its neighbours for a newcomer, who rejoins the paths', async () => {
    const s: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 2, recovery: 'checkfree' };
    const { coord, url } = await startSwarm(s, 4, { maxIterations: 40, skipRatio: 0.25, skipSchedule: 'collision', graceMs: 200 });
    await until(() => coord.scheduler.iteration >= 2, '2 iterations', 120_000);
    const victim = coord.stages.owner(1)!;
    harness.vols.find((x) => x.status().volunteerId === victim.id)!.kill();
    // No spare: the run goes on without stage 1 instead of waiting for a volunteer.
    await until(() => coord.stages.isVacant(1) && !coord.stages.isRebuilding(1), 'stage 1 vacant', 30_000);
    const lostAt = coord.scheduler.iteration;
    await until(() => coord.scheduler.iteration >= lostAt + 3, 'iterations without stage 1', 60_000);
    expect(coord.stages.isVacant(1)).toBe(true);
    const without = coord.scheduler.history.filter((h) => h.iteration > lostAt);
    const recorded = coord.scheduler.skips!.recorded().iterations;
    for (const h of without) {
      expect(h.skip!.vacant).toEqual([1]);
      expect(h.skip!.visits[1]).toBe(0);
      const it = recorded[h.iteration - 1]!; // record `iteration` is the count applied: its paths are iteration - 1's
      expect(it.vacant).toEqual([1]);
      for (const p of it.paths) expect(p).not.toContain(1);
    }
    const status = coord.scheduler.status();
    expect(status.state).toBe('running');
    expect(status.skip).toMatchObject({ ratio: 0.25, vacant: [1] });
    expect(coord.stages.staleStages()).toEqual([1]);
    // A volunteer arrives: stage 1 is rebuilt from its neighbours' current weights and visited again.
    harness.vols.push(await startNodeVolunteer(url, { name: 'newcomer' }));
    await until(() => !coord.stages.isVacant(1), 'stage 1 served again', 60_000);
    const servedAt = Date.now();
    const back = coord.scheduler.iteration;
    await until(() => coord.scheduler.iteration >= back + 2, 'iterations with stage 1', 60_000);
    const after = coord.scheduler.history.filter((h) => h.iteration > back);
    expect(after.every((h) => h.skip!.vacant.length === 0)).toBe(true);
    expect(after.some((h) => h.skip!.visits[1]! > 0)).toBe(true);
    expect(coord.scheduler.status().skip!.vacant).toEqual([]);
    const rebuilds = coord.recovery.done.filter((r) => r.stage === 1);
    // Rebuilt when its tab was lost and once more for the newcomer, from the neighbours as they are
    // then: one recovery, timed from the loss, closed only after the newcomer took the stage.
    expect(rebuilds.length).toBe(1);
    expect(rebuilds[0]!.iteration).toBeLessThanOrEqual(lostAt);
    expect(rebuilds[0]!.detectedAt + rebuilds[0]!.seconds! * 1000).toBeGreaterThanOrEqual(servedAt - 50);
    const closed = coord.events.list('recovery').filter((e) => e.data?.completed && e.data.stage === 1);
    expect(closed.length).toBe(1);
    expect(closed[0]!.time).toBeGreaterThanOrEqual(servedAt - 50);
    expect(rebuilds[rebuilds.length - 1]).toMatchObject({ method: 'average' });
    expect(rebuilds[rebuilds.length - 1]!.sources.map((x) => x.stage).sort()).toEqual([0, 2]);
    expect(coord.events.list('recovery').some((e) => /stage 1 rejoins the paths/.test(e.message))).toBe(true);
    expect(coord.events.list('run').some((e) => /stage 1 has no volunteer: training goes on without it/.test(e.message))).toBe(true);
  });
});
