/**
 * Evidence before conviction at a `--dp diloco` sync (pseudo-grad-review.ts): a finite outlier
 * pseudo-gradient is unverifiable (left out of the average, the replica reset to its group's
 * synced state and put on probation, never expelled); a non-finite one is quarantined. Live swarm
 * of Node volunteers: tiny model, 2 stages x 2 replicas, H = 2.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { startNodeVolunteer, type NodeVolunteer } from '../../testing/node-volunteer.js';
import { poisonFrame } from '../../testing/poisoned-volunteer.js';
import { DEFAULT_SETTINGS, modelConfigOf, type RunSettings } from '../../shared/run-settings.js';
import { DEFAULT_DP } from '../../shared/dp/dp-settings.js';
import { useNodeBackend } from '../../trainer/node-backend.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';
import { encodeSyncChunk, syncChunks } from '../../shared/dp/sync-chunks.js';
import { flatLength } from '../../shared/dp/flat-weights.js';
import { stageParamSpecs } from '../../shared/model/params.js';

const H = 2;
const dp = { ...DEFAULT_DP, mode: 'diloco' as const, every: H };
const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 2, microbatches: 2, batch: 2, recovery: 'checkfree', dp };

const harness = testSwarm();

beforeAll(async () => {
  await useNodeBackend('wasm');
}, 60_000);

const nodeOf = (id: string): NodeVolunteer => harness.vols.find((v) => v.status().volunteerId === id)!;
const metric = async (re: RegExp) => Number((await harness.coord!.metrics.text()).match(re)?.[1] ?? 0);

/** 2 stages x 2 replicas; after the first (honest) sync, stage 1's last replica answers every uplink request with `chunk(values)`. */
async function swarmWithLiar(lie: (frame: Uint8Array) => Uint8Array): Promise<{ coord: Coordinator; liar: string; sibling: string; identicalAfterSecondSync: () => boolean | null }> {
  const coord = (harness.coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, evalEvery: 0, rebalanceEvery: 0, maxIterations: 2 * H + 1 }));
  const url = await coord.listen();
  coord.scheduler.setPaused(true);
  for (let i = 0; i < 4; i++) harness.vols.push(await startNodeVolunteer(url, { name: `t${i}` }));
  await until(() => coord.stages.activeCount() === 4, 'all 4 tabs placed', 60_000);
  const [sibling, liar] = coord.stages.replicas(1).map((v) => v.id);
  let identical: boolean | null = null;
  coord.scheduler.observe((r) => {
    if (r.iteration === H) {
      const node = nodeOf(liar!);
      const total = flatLength(stageParamSpecs(modelConfigOf(settings), 1));
      node.socket.off('dp_sync_get');
      node.socket.on('dp_sync_get', (info: { iteration: number; chunk: number }, ack: (r: { frame: Uint8Array }) => void) => {
        const c = syncChunks(total)[info.chunk]!;
        ack({ frame: lie(encodeSyncChunk({ stage: 1, iteration: info.iteration, direction: 'up', wire: dp.wire }, c, new Float32Array(c.count).fill(1))) });
      });
    }
    if (r.iteration === 2 * H && coord.stages.replicas(1).length === 2) {
      // Right after the second sync: the liar, reset, holds its group's synced weights.
      const [wa, wb] = [sibling!, liar!].map((id) => nodeOf(id).agent.currentStage!.getWeights());
      identical = Object.keys(wa!).every((name) => Buffer.from(wa![name]!.buffer).equals(Buffer.from(wb![name]!.buffer)));
    }
  });
  coord.scheduler.setPaused(false);
  coord.scheduler.kick();
  await until(() => coord.scheduler.diloco!.count >= 2, 'the second sync', 240_000);
  return { coord, liar: liar!, sibling: sibling!, identicalAfterSecondSync: () => identical };
}

describe('diloco pseudo-gradient outliers', () => {
  it('a finite outlier is left out of the average, reset to the synced state and put on probation, not expelled', async () => {
    const { coord, liar, identicalAfterSecondSync } = await swarmWithLiar((f) => f);
    const last = coord.scheduler.diloco!.last!;
    expect(last.stages[1]!.rejected).toEqual([liar]);
    expect(last.stages[1]!.replicas).toBe(1);
    expect(last.stages[1]!.applied).toBe(true);
    expect(coord.events.list('quarantine')).toEqual([]);
    expect(coord.scheduler.probation.list()).toMatchObject([{ volunteer: liar, stage: 1 }]);
    expect(coord.stages.replicas(1).map((v) => v.id)).toContain(liar);
    expect(coord.events.list('run').some((e) => e.data?.reset === true && e.data?.volunteer === liar)).toBe(true);
    await until(() => identicalAfterSecondSync() !== null, 'the record after the second sync');
    expect(identicalAfterSecondSync()).toBe(true);
    expect(await metric(/swarm_screening_suspicions_total\{rule="pseudo"\} (\d+)/)).toBe(1);
    expect(await metric(/swarm_screening_audits_total\{verdict="unverifiable"\} (\d+)/)).toBe(1);
  }, 300_000);

  it('a non-finite pseudo-gradient is quarantined', async () => {
    const { coord, liar } = await swarmWithLiar(poisonFrame);
    await until(() => coord.events.list('quarantine').length >= 1, 'quarantine');
    const q = coord.events.list('quarantine');
    expect(q[0]!.data).toMatchObject({ volunteer: liar });
    expect(q[0]!.message).toMatch(/non-finite/);
    expect(coord.scheduler.probation.list()).toEqual([]);
    expect(coord.stages.replicas(1).map((v) => v.id)).not.toContain(liar);
  }, 300_000);
});
