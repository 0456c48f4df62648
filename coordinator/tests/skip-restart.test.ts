/**
 * SkipPipe's recorded schedule across a coordinator restart (docs/skippipe.md): the applied paths
 * are written to SQLite (skip_paths) at each commit, and a coordinator that resumes the run from
 * the same data dir serves the whole schedule at GET /api/operator/schedule, before any tab is back.
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
import { parseRecordedSchedule } from '../../shared/schedule/recorded-schedule.js';

let coords: Coordinator[] = [];
let vols: NodeVolunteer[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const v of vols.splice(0)) v.kill();
  for (const c of coords.splice(0)) await c.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function schedule(url: string, token: string) {
  const res = await fetch(`${url}/api/operator/schedule`, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  return parseRecordedSchedule(await res.text());
}

describe('SkipPipe schedule across a restart', () => {
  it('a resumed coordinator serves every iteration the first one applied, paths unchanged', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'swarm-skip-restart-'));
    dirs.push(dataDir);
    const N = 4;
    const opts: CoordinatorOptions = {
      ...DEFAULT_COORDINATOR,
      settings: { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 3, batch: 2, recovery: 'checkfree' },
      port: 0,
      silent: true,
      evalEvery: 0,
      maxReplicas: 1,
      maxIterations: 100,
      skipRatio: 0.25,
      skipSchedule: 'collision',
      dataDir,
    };
    const first = new Coordinator(opts);
    coords.push(first);
    const url1 = await first.listen();
    for (let i = 0; i < 4; i++) vols.push(await startNodeVolunteer(url1, { name: `t${i}` }));
    await until(() => first.scheduler.iteration >= N, `${N} iterations`, 180_000);
    first.scheduler.setPaused(true);
    await until(() => first.scheduler.state === 'paused', 'paused');
    const applied = first.scheduler.iteration;
    const before = await schedule(url1, first.operatorToken);
    expect(before.iterations).toHaveLength(applied);
    const runId = first.runId;
    for (const v of vols.splice(0)) v.kill();
    await first.close();
    coords = [];

    const resumable = findResumableRun(dataDir)!; // what main.ts does on start
    expect(resumable.id).toBe(runId);
    expect(resumable.iteration).toBe(applied);
    const second = new Coordinator({ ...opts, resumeRun: { id: runId, iteration: resumable.iteration } });
    coords.push(second);
    const url2 = await second.listen();
    const after = await schedule(url2, second.operatorToken);
    expect(after).toEqual(before);
  });
});
