/**
 * `--dp diloco --dp-warmup W` through a real coordinator and Node volunteers: the first W
 * iterations end with a sync of every group (H = 1), then the groups sync every H as before
 * (shared/dp/streaming.ts). The swarm's losses equal the local trainer's replaying the recorded
 * assignment with the same warm-up (< 1e-4 relative), and differ from the reference without it.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { startNodeVolunteer, type NodeVolunteer } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../../shared/run-settings.js';
import { DEFAULT_DP } from '../../shared/dp/dp-settings.js';
import { trainLocal } from '../../trainer/cli.js';
import { useNodeBackend } from '../../trainer/node-backend.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';

const H = 3;
const W = 2;
const N = 7;
const dp = { ...DEFAULT_DP, mode: 'diloco' as const, every: H, outerLr: 1, outerMomentum: 0, warmup: W };
const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 4, batch: 2, recovery: 'checkfree', dp };

const harness = testSwarm();

beforeAll(async () => {
  await useNodeBackend('wasm');
}, 60_000);

const nodeOf = (id: string): NodeVolunteer => harness.vols.find((v) => v.status().volunteerId === id)!;

describe('--dp diloco --dp-warmup in the swarm', () => {
  it('4 stages x 2 replicas, W = 2, H = 3: syncs after iterations 0, 1, 2, 5, replicas identical after each, the local trainer\'s losses', async () => {
    const coord = (harness.coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, evalEvery: 0, rebalanceEvery: 0, maxIterations: N }));
    const url = await coord.listen();
    const identicalAfter: number[] = [];
    coord.scheduler.observe((r) => {
      const same = [0, 1, 2, 3].every((s) => {
        const [wa, wb] = coord.stages.replicas(s).map((v) => nodeOf(v.id).agent.currentStage!.getWeights());
        return Object.keys(wa!).every((n) => Buffer.from(wa![n]!.buffer).equals(Buffer.from(wb![n]!.buffer)));
      });
      if (same) identicalAfter.push(r.iteration);
    });
    coord.scheduler.setPaused(true);
    for (let i = 0; i < 8; i++) harness.vols.push(await startNodeVolunteer(url, { name: `t${i}` }));
    await until(() => coord.stages.activeCount() === 8, 'all 8 tabs placed', 60_000);
    coord.scheduler.setPaused(false);
    coord.scheduler.kick();
    await until(() => coord.scheduler.iteration >= N, `${N} iterations`, 240_000);
    // Syncs after iterations 0 and 1 (warm-up), then 2 and 5 ((t + 1) mod 3 = 0): records 1, 2, 3, 6.
    expect(coord.scheduler.history.filter((h) => h.dpSync).map((h) => h.iteration)).toEqual([1, 2, 3, 6]);
    expect(coord.scheduler.diloco!.count).toBe(4);
    // Bit-identical right after every sync, and only then (iterations 4 and 5 end between syncs).
    expect(identicalAfter).toEqual([1, 2, 3, 6]);
    const losses = coord.scheduler.history.map((h) => h.trainLoss);
    const assignment = coord.assignment!.record([2, 2, 2, 2], N);
    const ref = await trainLocal({ ...settings, steps: N, evalEvery: 1000, evalBatches: 1, swap: false, replicas: 2, dp, assignment });
    for (let i = 0; i < N; i++) expect(Math.abs(losses[i]! - ref.trainLosses[i]!) / ref.trainLosses[i]!, `iteration ${i}`).toBeLessThan(1e-4);
    // Without the warm-up the same assignment gives other losses from iteration 1 on (the sync after iteration 0 moved the weights).
    const plain = await trainLocal({ ...settings, steps: N, evalEvery: 1000, evalBatches: 1, swap: false, replicas: 2, dp: { ...dp, warmup: 0 }, assignment });
    expect(Math.abs(plain.trainLosses[1]! - losses[1]!) / losses[1]!).toBeGreaterThan(1e-4);
  }, 300_000);
});
