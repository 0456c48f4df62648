/**
 * A busy SQLite under a live training swarm: another process holds the write lock for a while;
 * the coordinator counts the failed writes, keeps training, and stores every iteration once the
 * lock is gone.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { startNodeVolunteer, type NodeVolunteer } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS } from '../../shared/run-settings.js';
import { STORE_FILE } from '../record/store.js';
import { until } from '../../testing/until.js';

const vols: NodeVolunteer[] = [];
let coord: Coordinator | null = null;
let other: Database.Database | null = null;
const dataDir = mkdtempSync(join(tmpdir(), 'swarm-store-live-'));

afterAll(async () => {
  if (other?.inTransaction) other.exec('ROLLBACK');
  other?.close();
  for (const v of vols) v.kill();
  await coord?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('SQLite busy during training', () => {
  it('writes fail and are counted while the lock is held; training goes on; every iteration is stored afterwards', async () => {
    coord = new Coordinator({
      ...DEFAULT_COORDINATOR,
      settings: { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 2, recovery: 'checkfree' },
      port: 0,
      silent: true,
      evalEvery: 0,
      dataDir,
    });
    const url = await coord.listen();
    for (let i = 0; i < 4; i++) vols.push(await startNodeVolunteer(url, { name: `t${i}` }));
    await until(() => coord!.scheduler.iteration >= 1, 'training');
    other = new Database(join(dataDir, STORE_FILE), { timeout: 0 });
    other.exec('BEGIN IMMEDIATE');
    const locked = coord.scheduler.iteration;
    await until(() => coord!.scheduler.iteration >= locked + 3, 'training while the database is locked');
    const failures = Number(/swarm_store_write_failures_total\{table="iterations"\} (\d+)/.exec(await coord.metrics.text())?.[1] ?? 0);
    expect(failures).toBeGreaterThanOrEqual(1);
    expect(coord.store.queued).toBeGreaterThan(0);
    other.exec('COMMIT');
    other.close();
    other = null;
    const last = coord.scheduler.iteration;
    await until(() => coord!.store.queued === 0 && coord!.store.lastIteration(coord!.runId) >= last, 'queued rows written');
    const its = coord.store.iterations(coord.runId).map((r) => r.iteration);
    expect(its.slice(0, last)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    const health = await (await fetch(`${url}/healthz`)).json();
    expect(health.ok).toBe(true);
  });
});
