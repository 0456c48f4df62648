/**
 * Coordinator restart: SIGKILL the coordinator process mid-run, start it again on the same data
 * directory; the tabs (Node volunteers) reconnect with their weights and the run resumes from the
 * last completed iteration, without any checkpoint.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNodeVolunteer, type NodeVolunteer } from '../../testing/node-volunteer.js';
import { spawnChild, killChildren, freePort, type Child } from '../../testing/child.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const vols: NodeVolunteer[] = [];

function startCoordinator(port: number, dataDir: string, resumeWaitMs = 20000): Child {
  return spawnChild(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'coordinator/main.ts'), '--port', String(port), '--data-dir', dataDir, '--skip-build',
      '--stages', '4', '--microbatches', '2', '--batch', '2', '--eval-every', '0', '--recovery', 'checkfree', '--max-replicas', '1', '--resume-wait', String(resumeWaitMs)],
    { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'info' } },
  );
}

async function health(url: string): Promise<{ ok: boolean; runId: string; iteration: number; trainLoss: number | null; state: string } | null> {
  try {
    return (await (await fetch(`${url}/healthz`)).json()) as never;
  } catch {
    return null;
  }
}

async function until<T>(f: () => Promise<T | null | false>, what: string, ms = 120_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Even when a test fails: no coordinator process outlives it.
afterEach(async () => {
  for (const v of vols.splice(0)) v.kill();
  await killChildren();
});

describe('coordinator restart', () => {
  it('after SIGKILL, a restart on the same data dir resumes the run from the tabs, no checkpoint', async () => {
    const port = await freePort();
    const url = `http://localhost:${port}`;
    const dataDir = mkdtempSync(join(tmpdir(), 'swarm-data-'));
    const first = startCoordinator(port, dataDir);
    await until(() => health(url), 'first coordinator up');
    for (let i = 0; i < 4; i++) vols.push(await startNodeVolunteer(url, { name: `t${i}` }));
    const before = await until(async () => {
      const h = await health(url);
      return h && h.iteration >= 6 ? h : null;
    }, 'training before the crash');
    await first.kill('SIGKILL');
    expect(await health(url)).toBeNull();

    const second = startCoordinator(port, dataDir);
    const resumed = await until(async () => {
      const h = await health(url);
      return h && h.state === 'running' ? h : null;
    }, `the restarted coordinator running again\n${second.output()}`);
    expect(resumed.runId).toBe(before.runId);
    // It resumed from a completed iteration at or after what /healthz said before the kill (the
    // run may have completed more iterations in between), never from zero.
    expect(resumed.iteration).toBeGreaterThanOrEqual(before.iteration);
    const after = await until(async () => {
      const h = await health(url);
      return h && h.iteration >= resumed.iteration + 3 ? h : null;
    }, 'training after the restart');
    // Weights survived on the tabs: the loss continues from where it was, far below ln(256) = 5.55.
    expect(after.trainLoss!).toBeLessThan(before.trainLoss! + 0.3);
    expect(after.trainLoss!).toBeLessThan(4.5);
    expect(second.output()).toMatch(/resuming run/);
  });

  it('a tab that does not come back after the restart is rebuilt from its neighbours', async () => {
    for (const v of vols.splice(0)) v.kill();
    const port = await freePort();
    const url = `http://localhost:${port}`;
    const dataDir = mkdtempSync(join(tmpdir(), 'swarm-data-'));
    const first = startCoordinator(port, dataDir, 4000);
    await until(() => health(url), 'first coordinator up');
    for (let i = 0; i < 4; i++) vols.push(await startNodeVolunteer(url, { name: `t${i}` }));
    const before = await until(async () => {
      const h = await health(url);
      return h && h.iteration >= 4 ? h : null;
    }, 'training before the crash');
    await first.kill('SIGKILL');
    vols.find((v) => v.status().stage === 2)!.kill(); // stage 2's tab is gone for good while the coordinator is down
    // A longer window than socket.io's largest reconnection delay (5 s), so every tab that is alive gets back in time.
    const second = startCoordinator(port, dataDir, 8000);
    await until(() => health(url), 'second coordinator up');
    vols.push(await startNodeVolunteer(url, { name: 'newcomer' }));
    const after = await until(async () => {
      const h = await health(url);
      return h && h.state === 'running' && h.iteration >= before.iteration + 2 ? h : null;
    }, `training after the restart\n${second.output()}`);
    expect(after.runId).toBe(before.runId);
    expect(after.trainLoss!).toBeLessThan(4.5);
    expect(second.output()).toMatch(/stages 0, 1, 3 kept their weights; stages 2 rebuilt by checkfree/);
    expect(second.output()).toMatch(/stage 2 recovered by average/);
  });
});