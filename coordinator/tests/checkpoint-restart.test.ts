/**
 * The checkpoint baseline across a coordinator restart: the last checkpoint is found in SQLite
 * by the restarted coordinator, and when none of the run's tabs comes back, the run continues
 * from that checkpoint (same run, every stage restored from disk), not from the seed.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Coordinator, DEFAULT_COORDINATOR, type CoordinatorOptions } from '../server.js';
import { startNodeVolunteer, type NodeVolunteer } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS } from '../../shared/run-settings.js';
import { until } from '../../testing/until.js';
import { findResumableRun } from '../recovery/resume.js';

let coords: Coordinator[] = [];
let vols: NodeVolunteer[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const v of vols.splice(0)) v.kill();
  for (const c of coords.splice(0)) await c.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('checkpoint baseline across a restart', () => {
  it('the restarted coordinator knows the last checkpoint and resumes the run from it when no tab comes back', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'swarm-ckpt-restart-'));
    dirs.push(dataDir);
    const opts: CoordinatorOptions = {
      ...DEFAULT_COORDINATOR,
      settings: { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 2, recovery: 'checkpoint' },
      port: 0,
      silent: true,
      evalEvery: 0,
      dataDir,
      resumeWaitMs: 300,
      recovery: { ...DEFAULT_COORDINATOR.recovery, checkpointEvery: 2, checkpointDir: join(dataDir, 'checkpoints') },
    };
    const first = new Coordinator(opts);
    coords.push(first);
    const url1 = await first.listen();
    for (let i = 0; i < 4; i++) vols.push(await startNodeVolunteer(url1, { name: `t${i}` }));
    await until(() => (first.recovery.lastCheckpoint?.iteration ?? 0) >= 3, 'a checkpoint after a few iterations');
    const runId = first.runId;
    for (const v of vols.splice(0)) v.kill();
    await first.close();
    coords = [];
    const recorded = first.store.path; // the same SQLite file is reopened below
    expect(recorded).toBe(join(dataDir, 'swarm.sqlite'));

    const resumable = findResumableRun(dataDir)!; // what main.ts does on start
    expect(resumable.id).toBe(runId);
    const second = new Coordinator({ ...opts, resumeRun: { id: runId, iteration: resumable.iteration } });
    coords.push(second);
    const ck = second.recovery.lastCheckpoint!;
    expect(ck.iteration).toBeGreaterThanOrEqual(3);
    const url2 = await second.listen();
    // Fresh tabs (no weights, no resume claim): after the resume window every stage is restored.
    for (let i = 0; i < 4; i++) vols.push(await startNodeVolunteer(url2, { name: `n${i}` }));
    await until(() => second.events.list('run').some((e) => e.message.includes('from its checkpoint')), 'the resume decision');
    await until(() => second.scheduler.iteration >= ck.iteration + 1 && second.scheduler.state === 'running', 'training from the checkpoint');
    second.scheduler.setPaused(true);
    await until(() => second.scheduler.state === 'paused', 'paused');
    expect(second.runId).toBe(runId);
    const messages = second.events.list('run').map((e) => e.message);
    expect(messages.some((m) => m.includes(`resumed it from its checkpoint at iteration ${ck.iteration}`)), messages.join('\n')).toBe(true);
    expect(messages.some((m) => m.includes('from the seed'))).toBe(false);
    // Every stage carries the checkpoint's optimizer state: its step count is the run's iteration.
    for (const v of vols) {
      const st = v.agent.currentStage;
      if (st) expect(st.optimizerStep(), `stage ${st.index}`).toBe(second.scheduler.iteration);
    }
    expect(vols.filter((v) => v.agent.currentStage).length).toBe(4);
  });
});
