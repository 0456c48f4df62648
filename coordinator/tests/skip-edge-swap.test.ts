/**
 * Speed-aware placement for SkipPipe (skip-edge-swapper.ts): in a swarm of paced volunteers of
 * unequal speed, the slow tab on stage 0 (which every skip path runs) trades stages with the fast
 * tab of an intermediate stage between iterations, and training goes on; on full paths, where
 * every stage runs every microbatch, nothing moves.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { DEFAULT_SETTINGS, modelConfigOf, type RunSettings } from '../../shared/run-settings.js';
import { until } from '../../testing/until.js';
import { PacedVolunteer, frameTemplate } from '../../bench/paced-volunteer.js';
import { startNodeVolunteer } from '../../testing/node-volunteer.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { trainLocal } from '../../trainer/cli.js';
import { useNodeBackend } from '../../trainer/node-backend.js';
import { parseRecordedSchedule } from '../../shared/schedule/recorded-schedule.js';

const harness = testSwarm();

let coord: Coordinator | null = null;
const vols: PacedVolunteer[] = [];

afterEach(async () => {
  for (const v of vols.splice(0)) v.close();
  await coord?.close();
  coord = null;
});

async function swarm(skipRatio: number, paces: number[]): Promise<Coordinator> {
  const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: paces.length, microbatches: 4, batch: 1, recovery: 'checkfree' };
  const cfg = modelConfigOf(settings);
  const shape = [settings.batch, cfg.seqLen, cfg.dModel];
  const c = (coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, evalEvery: 0, maxIterations: 40, rebalanceEvery: 1, replicaSyncEvery: 0, clientDir: '/nonexistent', dataDir: null, skipRatio, skipSchedule: 'collision' }));
  const url = await c.listen();
  c.scheduler.setPaused(true);
  // One at a time, so volunteer s takes stage s.
  for (const [s, forwardMs] of paces.entries()) {
    vols.push(new PacedVolunteer(url, frameTemplate('act', shape, settings.wire!), frameTemplate('grad', shape, settings.wire!), { forwardMs, codecMs: 0 }));
    await until(() => c.stages.owner(s) !== undefined, `stage ${s} served`, 30_000);
  }
  c.scheduler.setPaused(false);
  return c;
}

describe('SkipPipe edge placement in the swarm', () => {
  it('moves the fast intermediate tab to the slow edge stage, exchanging their states, and keeps training', async () => {
    // Loads per iteration (4 stages, r = 0.25, M = 4): [4, 2, 2, 4]; stage 0's tab is the slowest.
    const c = await swarm(0.25, [60, 8, 20, 20]);
    await until(() => vols[1]!.stageIndex === 0 && vols[0]!.stageIndex === 1, 'the two tabs traded stages 0 and 1', 60_000).catch((e: Error) => {
      throw new Error(`${e.message}; iteration ${c.scheduler.iteration}, stages ${vols.map((v) => v.stageIndex).join(',')}, ms per task ${vols.map((v) => c.speeds.taskMs(c.stages.allReplicas().find((r) => r.stage === v.stageIndex)!)?.toFixed(0)).join(',')}; ${c.events.list().map((x) => x.message).slice(-8).join(' | ')}`);
    });
    await until(() => c.stages.size(0) === 1 && c.stages.size(1) === 1, 'both assignments confirmed', 30_000);
    const swap = c.events.list().find((e) => e.message.startsWith('skip edge swap'));
    expect(swap?.message).toMatch(/takes edge stage 0/);
    const at = c.scheduler.iteration;
    await until(() => c.scheduler.iteration >= at + 3, 'iterations after the swap', 60_000);
    expect(c.stages.ready()).toBe(true);
    // Not swapped back: the slow tab is better where it runs half the microbatches.
    expect(vols[1]!.stageIndex).toBe(0);
  }, 180_000);

  it('moves nothing on full paths', async () => {
    const c = await swarm(0, [60, 8, 20, 20]);
    await until(() => c.scheduler.iteration >= 5, '5 iterations', 120_000);
    expect(vols.map((v) => v.stageIndex)).toEqual([0, 1, 2, 3]);
    expect(c.events.list().some((e) => e.message.startsWith('skip edge swap'))).toBe(false);
  }, 180_000);

  it('exchanges the exact training states: the swarm still equals the local trainer replaying its schedule', async () => {
    const s: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 4, batch: 2, recovery: 'checkfree' };
    const N = 10;
    const c = (harness.coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings: s, port: 0, silent: true, evalEvery: N, evalBatches: 1, maxIterations: N, maxReplicas: 1, rebalanceEvery: 1, skipRatio: 0.25, skipSchedule: 'collision' }));
    const url = await c.listen();
    c.scheduler.setPaused(true);
    const paces = [400, 40, 120, 120];
    for (const [st, paceMs] of paces.entries()) {
      harness.vols.push(await startNodeVolunteer(url, { name: `t${st}`, paceMs }));
      await until(() => c.stages.owner(st) !== undefined, `stage ${st} served`, 30_000);
    }
    const slow = c.stages.owner(0)!;
    c.scheduler.setPaused(false);
    await until(() => c.scheduler.iteration >= N && c.scheduler.lastValLoss !== null, `${N} iterations`, 240_000);
    const moves = c.events.list().filter((e) => e.kind === 'assign').map((e) => e.message);
    // Which faster tab takes stage 0 is the planner's call on what it measured (real compute adds to
    // the paces here); the slow one no longer serves it.
    expect(c.stages.owner(0), moves.join('\n')).not.toBe(slow);
    expect(c.events.list().some((e) => e.message.startsWith('skip edge swap'))).toBe(true);
    const res = await fetch(`${url}/api/operator/schedule`, { headers: { authorization: `Bearer ${c.operatorToken}` } });
    const schedule = parseRecordedSchedule(await res.text());
    await useNodeBackend('wasm');
    const local = await trainLocal({ ...s, steps: N, evalEvery: N, evalBatches: 1, swap: false, recorded: schedule });
    const swarmLoss = c.scheduler.history.map((h) => h.trainLoss);
    for (let i = 0; i < N; i++) expect(Math.abs(swarmLoss[i]! - local.trainLosses[i]!) / local.trainLosses[i]!).toBeLessThan(1e-4);
    expect(Math.abs(c.scheduler.lastValLoss! - local.finalValLoss) / local.finalValLoss).toBeLessThan(1e-4);
  }, 300_000);
});
