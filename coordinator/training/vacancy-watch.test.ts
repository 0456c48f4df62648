/** No silent wait (issue 22, item 5): a long vacancy raises the alert in events, log, metrics and status. */
import { describe, it, expect } from 'vitest';
import { VacancyWatch } from './vacancy-watch.js';
import { SwarmMetrics } from '../record/metrics.js';
import { EventLog } from '../record/events-log.js';
import { createLogger } from '../record/log.js';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { startNodeVolunteer } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS } from '../../shared/run-settings.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';

const harness = testSwarm();

describe('VacancyWatch', () => {
  it('measures each wait, alerts once past the alert time, and ends the alert when the stage is served', async () => {
    const vacant = new Set([2]);
    const metrics = new SwarmMetrics();
    const log = createLogger({ silent: true });
    const events = new EventLog(log);
    let changes = 0;
    const w = new VacancyWatch(60_000, { nStages: 4, isVacant: (s) => vacant.has(s), metrics, events, log, changed: () => changes++ });
    w.check(1_000);
    w.check(31_000);
    expect(w.waitedSeconds(2, 31_000)).toBe(30);
    expect(w.alerts()).toEqual([]);
    expect(await metrics.text()).toMatch(/swarm_stage_vacant_seconds\{stage="2"\} 30\n/);
    w.check(61_000);
    w.check(70_000);
    expect(w.alerts()).toEqual([2]);
    expect(changes).toBe(1);
    expect(events.list('alert').map((e) => e.message)).toEqual(['stage 2 needs a volunteer: the run has waited 60 s for one (--vacancy-alert 60 s)']);
    vacant.clear();
    w.check(80_000);
    expect(w.alerts()).toEqual([]);
    expect(changes).toBe(2);
    expect(events.list('alert')[1]!.message).toBe('stage 2 is served again after waiting 79 s for a volunteer');
    expect(await metrics.text()).toMatch(/swarm_stage_vacant_seconds\{stage="2"\} 0\n/);
    // A new wait starts from zero.
    vacant.add(2);
    w.check(90_000);
    expect(w.waitedSeconds(2, 100_000)).toBe(10);
    expect(() => new VacancyWatch(0, { nStages: 1, isVacant: () => false, metrics, events, log, changed: () => {} })).toThrow(RangeError);
  });

  it('a swarm short of a volunteer raises it on the pages and in /metrics; a newcomer ends it', async () => {
    harness.coord = new Coordinator({
      ...DEFAULT_COORDINATOR,
      settings: { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 2 },
      port: 0,
      silent: true,
      evalEvery: 0,
      graceMs: 200,
      vacancyAlertMs: 1_000,
    });
    const coord = harness.coord;
    const url = await coord.listen();
    for (const n of ['a', 'b', 'c']) harness.vols.push(await startNodeVolunteer(url, { name: n }));
    // (Stages 0 to 2 may alert too if the tabs take longer than the alert time to join.)
    await until(() => coord.scheduler.status().needsVolunteer.join() === '3', 'the vacancy alert for stage 3 alone', 30_000);
    expect(coord.events.list('alert').find((e) => e.data?.stage === 3)!.message).toMatch(/^stage 3 needs a volunteer: the run has waited \d+ s for one \(--vacancy-alert 1 s\)/);
    await until(() => harness.vols.every((v) => v.status().run?.needsVolunteer.includes(3) === true), 'the pages told');
    expect(await coord.metrics.text()).toMatch(/swarm_stage_vacant_seconds\{stage="3"\} ([1-9]|0\.9)/);
    harness.vols.push(await startNodeVolunteer(url, { name: 'd' }));
    await until(() => coord.scheduler.iteration >= 2, 'training once served');
    expect(coord.scheduler.status().needsVolunteer).toEqual([]);
    expect(coord.events.list('alert').at(-1)!.message).toMatch(/^stage 3 is served again/);
    await until(() => harness.vols.every((v) => v.status().run?.needsVolunteer.length === 0), 'the pages told it is over');
  });
});
