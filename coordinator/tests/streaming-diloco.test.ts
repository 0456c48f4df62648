/**
 * Streaming DiLoCo (`--dp-fragments 2 --dp-overlap 1`) through a real coordinator and Node
 * volunteers: 4 stages x 2 replicas, H = 2, so fragment 1 syncs after iterations 0, 2, 4 and
 * fragment 0 after 1, 3; each sync is collected while the next iteration trains and applied after
 * it (mixed 0.5 / 0.5 with the local weights). The swarm's losses equal the local trainer
 * replaying the swarm's recorded assignment with the same plan (< 1e-4 relative), and the
 * replicas' outer states agree after every apply.
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
import { encodeSyncChunk, syncChunks } from '../../shared/dp/sync-chunks.js';
import { flatLength } from '../../shared/dp/flat-weights.js';
import { stageParamSpecs } from '../../shared/model/params.js';
import { modelConfigOf } from '../../shared/run-settings.js';
import { fragmentDueAfter, fragmentRanges } from '../../shared/dp/streaming.js';

const H = 2;
const N = 6;
const dpBase = { ...DEFAULT_DP, mode: 'diloco' as const, every: H, fragments: 2, overlap: 1 };
const settingsBase: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 4, batch: 2, recovery: 'checkfree', dp: dpBase };

const harness = testSwarm();

beforeAll(async () => {
  await useNodeBackend('wasm');
}, 60_000);

describe('--dp diloco --dp-fragments 2 --dp-overlap 1 in the swarm', () => {
  it.each(['mix', 'delta'] as const)('staggered, overlapped fragment syncs (merge %s): the local reference\'s losses for the recorded assignment, one outer state per group', async (merge) => {
    const dp = { ...dpBase, merge };
    const settings = { ...settingsBase, dp };
    const coord = (harness.coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, evalEvery: 0, rebalanceEvery: 0, maxIterations: N }));
    const url = await coord.listen();
    const nodeOf = (id: string): NodeVolunteer => harness.vols.find((v) => v.status().volunteerId === id)!;
    /** Per applied sync (iteration it + 1 done), whether each group's replicas hold the same synced weights and momentum. */
    const agreed: boolean[] = [];
    coord.scheduler.observe((r) => {
      if (r.iteration < 2) return;
      for (let s = 0; s < 4; s++) {
        const [a, b] = coord.stages.replicas(s).map((v) => (nodeOf(v.id).agent as unknown as { diloco: { state(): { synced: Float32Array; momentum: Float32Array; syncs: number } } }).diloco.state());
        agreed.push(Buffer.from(a!.synced.buffer).equals(Buffer.from(b!.synced.buffer)) && Buffer.from(a!.momentum.buffer).equals(Buffer.from(b!.momentum.buffer)) && a!.syncs === b!.syncs);
      }
    });
    coord.scheduler.setPaused(true);
    for (let i = 0; i < 8; i++) harness.vols.push(await startNodeVolunteer(url, { name: `t${i}` }));
    await until(() => coord.stages.activeCount() === 8, 'all 8 tabs placed', 60_000);
    coord.scheduler.setPaused(false);
    coord.scheduler.kick();
    // (the iteration counter moves before its apply and record: wait for the record)
    await until(() => coord.scheduler.history.length >= N, `${N} iterations recorded`, 240_000);
    for (let s = 0; s < 4; s++) expect(coord.stages.size(s)).toBe(2);
    const sync = coord.scheduler.diloco!;
    // started after 0..5, applied after 1..5: five applied (the one after 5 is still in flight)
    expect(sync.count).toBe(N - 1);
    expect(sync.inFlight).toBe(true);
    expect(sync.last!.iteration).toBe(N - 2);
    expect(sync.last!.fragment).toBe((N - 2) % 2 === 0 ? 1 : 0);
    expect(sync.last!.stages.every((r) => r.applied && r.replicas === 2 && r.bytesUp > 0 && r.drift > 0)).toBe(true);
    expect(coord.scheduler.history.filter((h) => h.dpSync).map((h) => h.iteration)).toEqual([2, 3, 4, 5, 6]);
    expect(agreed.length).toBeGreaterThan(0);
    expect(agreed.every(Boolean)).toBe(true);
    const losses = coord.scheduler.history.map((h) => h.trainLoss);
    const ref = await trainLocal({ ...settings, steps: N, evalEvery: 1000, evalBatches: 1, swap: false, replicas: 2, dp, assignment: coord.assignment!.record([2, 2, 2, 2], N) });
    for (let i = 0; i < N; i++) expect(Math.abs(losses[i]! - ref.trainLosses[i]!) / ref.trainLosses[i]!, `iteration ${i}`).toBeLessThan(1e-4);
    // The overlap matters: the plain DiLoCo reference with the same assignment trains otherwise.
    const plain = await trainLocal({ ...settings, steps: N, evalEvery: 1000, evalBatches: 1, swap: false, replicas: 2, dp: { ...dp, fragments: 1, overlap: 0 }, assignment: coord.assignment!.record([2, 2, 2, 2], N) });
    expect(Math.max(...losses.slice(3).map((l, i) => Math.abs(l - plain.trainLosses[i + 3]!) / l))).toBeGreaterThan(1e-4);
  }, 300_000);

  it('a replica lying at an overlapped fragment sync is screened out against that fragment\'s history, reset to its group\'s state and put on probation; its sibling goes on', async () => {
    const dp = dpBase;
    const settings = settingsBase;
    const plan = { ...dp, every: 4, fragments: 2, overlap: 1 };
    const coord = (harness.coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings: { ...settings, dp: plan }, port: 0, silent: true, evalEvery: 0, rebalanceEvery: 0, maxIterations: 8 }));
    const url = await coord.listen();
    const nodeOf = (id: string): NodeVolunteer => harness.vols.find((v) => v.status().volunteerId === id)!;
    coord.scheduler.setPaused(true);
    for (let i = 0; i < 8; i++) harness.vols.push(await startNodeVolunteer(url, { name: `t${i}` }));
    await until(() => coord.stages.activeCount() === 8, 'all 8 tabs placed', 60_000);
    const liar = coord.stages.replicas(1).at(-1)!;
    coord.scheduler.observe((r) => {
      if (r.iteration !== 4) return;
      // Both fragments synced honestly once (after iterations 1 and 3); from now on this tab
      // answers every uplink request with ones, in the chunks of the fragment due.
      const node = nodeOf(liar.id);
      const total = flatLength(stageParamSpecs(modelConfigOf(settings), 1));
      node.socket.off('dp_sync_get');
      node.socket.on('dp_sync_get', (info: { iteration: number; chunk: number }, ack: (r: { frame: Uint8Array }) => void) => {
        const f = fragmentRanges(total, 2)[fragmentDueAfter(plan, info.iteration)!]!;
        const c = syncChunks(f.count)[info.chunk]!;
        ack({ frame: encodeSyncChunk({ stage: 1, iteration: info.iteration, direction: 'up', wire: dp.wire }, c, new Float32Array(c.count).fill(1)) });
      });
    });
    coord.scheduler.setPaused(false);
    coord.scheduler.kick();
    await until(() => coord.scheduler.diloco!.count >= 3, 'the third sync applied', 240_000);
    const last = coord.scheduler.diloco!.last!;
    expect(last.iteration).toBe(5);
    expect(last.fragment).toBe(1);
    expect(last.stages[1]!.rejected).toEqual([liar.id]);
    expect(last.stages[1]!.replicas).toBe(1);
    expect(last.stages[1]!.applied).toBe(true);
    // Unverifiable (nobody can re-run H iterations of its own work): left out, reset to its
    // group's synced state and on probation, not expelled (coordinator/screening/pseudo-grad-review.ts).
    expect(coord.events.list('quarantine')).toEqual([]);
    expect(coord.scheduler.probation.list().map((p) => p.volunteer)).toContain(liar.id);
    expect(coord.events.list('run').some((e) => e.data?.reset === true && e.data?.volunteer === liar.id)).toBe(true);
  }, 300_000);
});
