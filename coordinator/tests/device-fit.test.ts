/**
 * A tab whose backend cannot hold any stage (it reported its limits in hello) is never given one:
 * it stays a spare, hears why, and the event log says so; the tabs that fit train as usual.
 */
import { describe, it, expect } from 'vitest';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { startNodeVolunteer } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS } from '../../shared/run-settings.js';
import { modelMemory } from '../../shared/model/memory.js';
import { modelConfigOf } from '../../shared/run-settings.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';

const harness = testSwarm();

describe('tabs too small for a stage', () => {
  it('a tab whose buffers cannot hold any stage stays a spare and is told why; the others train', async () => {
    const settings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 2 };
    const coord = (harness.coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, evalEvery: 0 }));
    const url = await coord.listen();
    const largest = Math.min(...modelMemory(modelConfigOf(settings), { batch: 2, microbatches: 2 }).map((m) => m.largestTensorBytes));
    // Joins first, so it would be first in line for stage 0 if its limits were ignored.
    const small = await startNodeVolunteer(url, { name: 'small', capabilities: { limits: { maxBufferSize: largest - 1 } } });
    harness.vols.push(small);
    for (let i = 0; i < 4; i++) harness.vols.push(await startNodeVolunteer(url, { name: `t${i}` }));
    await until(() => coord.scheduler.iteration >= 3, 'the four tabs that fit train');
    const id = small.status().volunteerId;
    expect(coord.stages.allReplicas().map((v) => v.id)).not.toContain(id);
    expect(coord.placement.spares().map((v) => v.id)).toContain(id);
    expect(coord.events.list('assign').some((e) => e.message.startsWith(`${id} stays a spare: this device cannot hold any stage of the run: stage `) && /maxBufferSize/.test(e.message))).toBe(true);
    await until(() => /^this device cannot hold any stage of the run: stage \d+'s largest tensor/.test(small.status().spareReason ?? ''), 'the tab is told why');
  });
});
