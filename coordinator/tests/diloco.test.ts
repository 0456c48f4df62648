/**
 * `--dp diloco` through a real coordinator and Node volunteers over socket.io: 4 stages x 2
 * replicas train, every H iterations the groups sync (pseudo-gradients up in int8 chunks, the
 * mean down, the outer Nesterov step), the replicas are bit-identical right after each sync, the
 * loss equals the local trainer replaying the swarm's recorded assignment of hops to replicas
 * (stored with the run and exported by the operator endpoint), and a replica killed mid-interval costs only its own progress.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { Coordinator, DEFAULT_COORDINATOR, type CoordinatorOptions } from '../server.js';
import { startNodeVolunteer, type NodeVolunteer, type NodeVolunteerOptions } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../../shared/run-settings.js';
import { DEFAULT_DP } from '../../shared/dp/dp-settings.js';
import { trainLocal } from '../../trainer/cli.js';
import { useNodeBackend } from '../../trainer/node-backend.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';
import type { NamedWeights } from '../../shared/model/stage.js';
import { encodeSyncChunk, syncChunks } from '../../shared/dp/sync-chunks.js';
import { flatLength } from '../../shared/dp/flat-weights.js';
import { stageParamSpecs } from '../../shared/model/params.js';
import { modelConfigOf } from '../../shared/run-settings.js';

/** A copy (the wasm backend's read-backs may be views that later computations overwrite). */
const copyOf = (w: NamedWeights): NamedWeights => Object.fromEntries(Object.entries(w).map(([k, v]) => [k, Float32Array.from(v)]));

const H = 2;
const N = 5;
const dp = { ...DEFAULT_DP, mode: 'diloco' as const, every: H };
const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 4, batch: 2, recovery: 'checkfree', dp };

const harness = testSwarm();

beforeAll(async () => {
  await useNodeBackend('wasm');
}, 60_000);

async function startSwarm(extra: Partial<CoordinatorOptions> = {}) {
  const coord = (harness.coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, evalEvery: 0, rebalanceEvery: 0, ...extra }));
  const url = await coord.listen();
  return { coord, url };
}

async function joinEvenly(c: Coordinator, url: string, n: number, opts: NodeVolunteerOptions = {}): Promise<void> {
  c.scheduler.setPaused(true);
  for (let i = 0; i < n; i++) harness.vols.push(await startNodeVolunteer(url, { name: `t${i}`, ...opts }));
  await until(() => c.stages.activeCount() === n, `all ${n} tabs placed`, 60_000);
  c.scheduler.setPaused(false);
  c.scheduler.kick();
}

const nodeOf = (id: string): NodeVolunteer => harness.vols.find((v) => v.status().volunteerId === id)!;

/** Each stage's replicas hold the same bits. */
function expectReplicasIdentical(c: Coordinator): void {
  for (let s = 0; s < settings.stages; s++) {
    const [wa, wb] = c.stages.replicas(s).map((v) => nodeOf(v.id).agent.currentStage!.getWeights());
    for (const name of Object.keys(wa!)) expect(Buffer.from(wa![name]!.buffer).equals(Buffer.from(wb![name]!.buffer)), `stage ${s} ${name}`).toBe(true);
  }
}

describe('--dp diloco in the swarm', () => {
  it('4 stages x 2 replicas: syncs every H, bit-identical after each sync, the local trainer\'s losses and synced weights for the recorded assignment', async () => {
    const { coord, url } = await startSwarm({ maxIterations: N, operatorToken: 'diloco-test-token' });
    let checked = 0;
    let afterFirstSync: NamedWeights[] = [];
    let differedBetween = false;
    coord.scheduler.observe((r) => {
      if (r.iteration % H === 0) {
        expectReplicasIdentical(coord);
        if (r.iteration === H) afterFirstSync = [0, 1, 2, 3].map((s) => copyOf(nodeOf(coord.stages.replicas(s)[0]!.id).agent.currentStage!.getWeights()));
        checked++;
      } else {
        // Between syncs each replica stepped on its own gradient: they differ.
        const [wa, wb] = coord.stages.replicas(1).map((v) => nodeOf(v.id).agent.currentStage!.getWeights());
        const name = Object.keys(wa!).find((n) => n.startsWith('blocks') || n.includes('attn')) ?? Object.keys(wa!)[0]!;
        if (!Buffer.from(wa![name]!.buffer).equals(Buffer.from(wb![name]!.buffer))) differedBetween = true;
      }
    });
    await joinEvenly(coord, url, 8);
    await until(() => coord.scheduler.iteration >= N, `${N} iterations`, 240_000);
    for (let s = 0; s < 4; s++) expect(coord.stages.size(s)).toBe(2);
    expect(checked).toBe(Math.floor(N / H));
    expect(differedBetween).toBe(true);
    const sync = coord.scheduler.diloco!;
    expect(sync.count).toBe(Math.floor(N / H));
    expect(sync.last!.stages.map((r) => r.replicas)).toEqual([2, 2, 2, 2]);
    // The dashboard's figures ride on the iteration records of sync iterations only.
    expect(coord.scheduler.history.filter((h) => h.dpSync).map((h) => h.iteration)).toEqual([2, 4]);
    expect(coord.scheduler.history.find((h) => h.dpSync)!.dpSync!.bytes).toBeGreaterThan(0);
    expect(sync.last!.stages.every((r) => r.applied && r.bytesUp > 0 && r.bytesDown > 0 && r.drift > 0 && r.drift < 10)).toBe(true);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/swarm_dp_sync_bytes_total\{stage="0"\} [1-9]\d*/);
    expect(metrics).toMatch(/swarm_dp_sync_seconds_count [1-9]/);
    expect(metrics).toMatch(/swarm_dp_drift\{stage="3"\} \d/);
    expect(metrics).toMatch(/swarm_reduction_bytes_total 0/);
    // The reference replays the recorded assignment: the same losses up to the first sync, and
    // the same weights right after it (every stage, replica 0; the int8 sync frames are the
    // same bytes on both sides).
    const losses = coord.scheduler.history.map((h) => h.trainLoss);
    const ref = await trainLocal({ ...settings, steps: H, evalEvery: 1000, evalBatches: 1, swap: false, replicas: 2, dp, assignment: coord.assignment!.record([2, 2, 2, 2], H) });
    const refWeights = ref.finalWeights.map(copyOf); // wasm views: copied before anything else runs
    for (let i = 0; i < H; i++) expect(Math.abs(losses[i]! - ref.trainLosses[i]!) / ref.trainLosses[i]!, `iteration ${i}`).toBeLessThan(1e-4);
    // The record as stored with the run and exported (GET /api/operator/assignment): the group
    // sizes come from the swarm, and the file is what `train:local --assignment` reads.
    await until(() => coord.store.assignments(coord.runId).length >= N, 'every iteration\'s assignment stored', 30_000);
    const res = await fetch(`${url}/api/operator/assignment`, { headers: { authorization: 'Bearer diloco-test-token' } });
    expect(res.status).toBe(200);
    const exported = await res.json();
    expect(exported).toEqual(coord.assignment!.record([2, 2, 2, 2], N));
    expect(res.headers.get('x-swarm-assignment-ends')).toMatch(/last stored iteration/);
    const full = await trainLocal({ ...settings, steps: N, evalEvery: 1000, evalBatches: 1, swap: false, replicas: 2, dp, assignment: exported });
    for (let i = 0; i < N; i++) expect(Math.abs(losses[i]! - full.trainLosses[i]!) / full.trainLosses[i]!, `iteration ${i}`).toBeLessThan(1e-4);
    for (let s = 0; s < 4; s++) {
      let diff = 0;
      let scale = 0;
      for (const n of Object.keys(refWeights[s]!)) {
        const a = afterFirstSync[s]![n]!;
        const b = refWeights[s]![n]!;
        for (let i = 0; i < a.length; i++) {
          diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
          scale = Math.max(scale, Math.abs(b[i]!));
        }
      }
      expect(diff / scale, `stage ${s} weights after the first sync`).toBeLessThan(1e-5);
    }
  }, 300_000);

  it('a replica killed mid-interval: no rebuild, no abandoned iteration, its sibling syncs alone and training goes on', async () => {
    const { coord, url } = await startSwarm({ maxIterations: 2 * H + 1 });
    await joinEvenly(coord, url, 8, { paceMs: 20 });
    await until(() => coord.scheduler.iteration >= H + 1, 'past the first sync', 240_000);
    const victim = coord.stages.replicas(2).at(-1)!;
    nodeOf(victim.id).kill();
    await until(() => coord.scheduler.diloco!.count >= 2, 'the second sync', 240_000);
    expect(coord.recovery.done.filter((r) => r.rung === 'strategy')).toEqual([]);
    expect((await coord.metrics.abandoned.get()).values[0]?.value ?? 0).toBe(0);
    const last = coord.scheduler.diloco!.last!;
    expect(last.iteration).toBe(2 * H - 1);
    expect(last.stages[2]!.replicas).toBe(1);
    expect(last.stages.filter((r) => r.stage !== 2).every((r) => r.replicas === 2)).toBe(true);
    expect(last.stages.every((r) => r.applied)).toBe(true);
  }, 300_000);

  it('a replica lying at a sync (a huge pseudo-gradient) is screened out against the history, reset to the synced state and put on probation; its sibling\'s sync goes on', async () => {
    const { coord, url } = await startSwarm({ maxIterations: 2 * H + 1 });
    await joinEvenly(coord, url, 8);
    const liar = coord.stages.replicas(1).at(-1)!;
    coord.scheduler.observe((r) => {
      if (r.iteration !== H) return;
      // After the first (honest) sync: from now on this tab answers every uplink request with ones.
      const node = nodeOf(liar.id);
      const total = flatLength(stageParamSpecs(modelConfigOf(settings), 1));
      node.socket.off('dp_sync_get');
      node.socket.on('dp_sync_get', (info: { iteration: number; chunk: number }, ack: (r: { frame: Uint8Array }) => void) => {
        const c = syncChunks(total)[info.chunk]!;
        ack({ frame: encodeSyncChunk({ stage: 1, iteration: info.iteration, direction: 'up', wire: dp.wire }, c, new Float32Array(c.count).fill(1)) });
      });
    });
    await until(() => coord.scheduler.diloco!.count >= 2, 'the second sync', 240_000);
    const last = coord.scheduler.diloco!.last!;
    expect(last.iteration).toBe(2 * H - 1);
    expect(last.stages[1]!.rejected).toEqual([liar.id]);
    expect(last.stages[1]!.replicas).toBe(1);
    expect(last.stages[1]!.applied).toBe(true);
    // Unverifiable (nobody can re-run H iterations of its own work): left out, reset to its
    // group's synced state and on probation, not expelled (coordinator/screening/pseudo-grad-review.ts).
    expect(coord.events.list('quarantine')).toEqual([]);
    expect(coord.scheduler.probation.list().map((p) => p.volunteer)).toContain(liar.id);
    expect(coord.events.list('run').some((e) => e.data?.reset === true && e.data?.volunteer === liar.id)).toBe(true);
    expect((await coord.metrics.abandoned.get()).values[0]?.value ?? 0).toBe(0);
  }, 300_000);
});
