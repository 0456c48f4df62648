/**
 * The agent's duty cycle ("use at most N% of my GPU"): after a task of t ms it rests
 * t * (1 - d) / d ms before the next, so between two consecutive results of a tab at least
 * (previous task's rest + next task's compute) passes. A tab at full duty breaks that bound
 * (tasks back to back), which shows the check can fail.
 */
import { describe, it, expect } from 'vitest';
import { Coordinator, DEFAULT_COORDINATOR } from '../coordinator/server.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../shared/run-settings.js';
import { startNodeVolunteer, type NodeVolunteer } from './node-volunteer.js';
import type { VolunteerSocket } from '../shared/volunteer/agent.js';
import { testSwarm } from './test-swarm.js';
import { until } from './until.js';

const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 2, microbatches: 4, batch: 2, seqLen: 32, recovery: 'checkfree' };
const swarm = testSwarm();

/** Records when each result leaves the tab and how long its task computed. */
function recordOuts(into: { at: number; computeMs: number }[]) {
  return (socket: VolunteerSocket) => {
    const emit = socket.emit.bind(socket) as (...a: unknown[]) => VolunteerSocket;
    (socket as unknown as { emit: (...a: unknown[]) => VolunteerSocket }).emit = (...a: unknown[]) => {
      if (a[0] === 'out') into.push({ at: performance.now(), computeMs: (a[1] as { computeMs: number }).computeMs });
      return emit(...a);
    };
  };
}

/** Pairs of consecutive results closer than the duty cycle `d` allows. */
function violations(outs: { at: number; computeMs: number }[], d: number): number {
  let n = 0;
  for (let i = 1; i < outs.length; i++) {
    const rest = (outs[i - 1]!.computeMs * (1 - d)) / d;
    // Timers have whole-millisecond resolution: allow 2 ms and 1% of the rest.
    if (outs[i]!.at - outs[i - 1]!.at < rest + outs[i]!.computeMs - 2 - 0.01 * rest) n++;
  }
  return n;
}

describe('duty cycle', () => {
  it('a tab at 25% rests three times its compute between tasks; a tab at 100% does not', async () => {
    swarm.coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, evalEvery: 0, maxIterations: 3, sampleEverySeconds: 0 });
    const url = await swarm.coord.listen();
    const slow: { at: number; computeMs: number }[] = [];
    const full: { at: number; computeMs: number }[] = [];
    swarm.vols.push(await startNodeVolunteer(url, { name: 'quarter', dutyCycle: 0.25, wrapSocket: recordOuts(slow) }));
    swarm.vols.push(await startNodeVolunteer(url, { name: 'full', wrapSocket: recordOuts(full) }));
    await until(() => swarm.coord!.scheduler.iteration >= 3, '3 iterations', 120_000);
    expect(slow.length).toBeGreaterThanOrEqual(3 * 2 * settings.microbatches);
    expect(violations(slow, 0.25)).toBe(0);
    expect(violations(full, 0.25)).toBeGreaterThan(0);
  });
});
