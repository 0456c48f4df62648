/**
 * Resume claims are proven: after a restart a tab reclaims its stage only with the secret its
 * assignment carried (the store keeps its hash) and a step count the store recorded (or one
 * more). A stranger who read {runId, stage, iteration} off /healthz gets nothing.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io as ioClient, type Socket } from 'socket.io-client';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { RunStore } from '../record/store.js';
import { DEFAULT_SETTINGS } from '../../shared/run-settings.js';
import { until } from '../../testing/until.js';

let coord: Coordinator | null = null;
let sockets: Socket[] = [];
let dir = '';

afterEach(async () => {
  for (const s of sockets) s.close();
  sockets = [];
  await coord?.close();
  coord = null;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('resume claims', () => {
  it('a stranger with the run id, stage and step count from /healthz cannot reclaim a stage', async () => {
    dir = mkdtempSync(join(tmpdir(), 'swarm-claims-'));
    const settings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 2, microbatches: 2, batch: 1, recovery: 'checkfree' as const };
    // The previous run: recorded in the store with 3 iterations and one proven claim.
    const store = new RunStore(dir);
    store.startRun('oldrun01', { settings });
    for (let i = 1; i <= 3; i++) store.addIteration('oldrun01', { iteration: i, trainLoss: 5, valLoss: null, seconds: 1, time: Date.now(), tokens: 1, stages: [] });
    store.setClaim('oldrun01', 'f'.repeat(64), 0);
    store.close();
    coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, dataDir: dir, resumeRun: { id: 'oldrun01', iteration: 3 }, resumeWaitMs: 1500, evalEvery: 0 });
    const url = await coord.listen();
    const health = await (await fetch(`${url}/healthz`)).json();
    const s = ioClient(url, { transports: ['websocket'], forceNew: true, reconnection: false });
    sockets.push(s);
    await new Promise<void>((r) => s.once('connect', () => r()));
    s.on('assign', (_a: unknown, ack: (r: unknown) => void) => ack({ ok: true }));
    await new Promise<void>((r) =>
      s.emit('hello', { backend: 'cpu', adapter: null, throughputGflops: 1, agent: 'stranger', resume: { runId: health.runId, stage: 0, iteration: health.iteration, token: 'guessed-token-1234567890' } }, () => r()),
    );
    await until(() => coord!.events.list('rejected').some((e) => e.data?.reason === 'resume_claim'), 'the claim refused', 10_000);
    // Nobody proved a claim: the window ends with a new run from the seed, the old one untouched.
    await until(() => coord!.runId !== 'oldrun01', 'a new run', 10_000);
    expect(coord.events.list('join').some((e) => /reclaimed/.test(e.message))).toBe(false);
  });
});
