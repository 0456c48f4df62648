/** Uploads in chunks: put together exactly, refused when a chunk lies; a live swarm moving every state and gradient in 4 KiB chunks. */
import { describe, it, expect, beforeAll } from 'vitest';
import { EventEmitter } from 'node:events';
import { BundleTransfer } from './bundle-transfer.js';
import type { Volunteer } from './registry.js';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { startNodeVolunteer } from '../../testing/node-volunteer.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../../shared/run-settings.js';
import { trainLocal } from '../../trainer/cli.js';
import { useNodeBackend } from '../../trainer/node-backend.js';

type Reply = (req: { offset: number; maxBytes: number }) => unknown;

/** A tab whose socket answers each chunk request with `reply(request)` after `delayMs` (undefined: never). */
function fakeTab(reply: Reply, delayMs = 1): Volunteer {
  const socket = Object.assign(new EventEmitter(), {
    connected: true,
    emit(_event: string, ...args: unknown[]) {
      const ack = args.at(-1) as (r: unknown) => void;
      const r = reply(args[0] as { offset: number; maxBytes: number });
      if (r !== undefined) setTimeout(() => ack(r), delayMs);
      return true;
    },
  });
  return { id: 'tab', socket } as unknown as Volunteer;
}

const bundle = Uint8Array.from({ length: 10 }, (_, i) => i + 1);
const honest: Reply = ({ offset, maxBytes }) => ({ total: bundle.byteLength, offset, bytes: bundle.slice(offset, offset + maxBytes) });

describe('BundleTransfer', () => {
  const t = new BundleTransfer(4, 100);
  const pull = (r: Reply) => t.pull(fakeTab(r), { event: 'get_weights', parts: 'all' }, 1000);

  it('puts the chunks together, including a tab that sends less than asked', async () => {
    expect([...(await pull(honest))]).toEqual([...bundle]);
    const stingy: Reply = ({ offset }) => ({ total: bundle.byteLength, offset, bytes: bundle.slice(offset, offset + 1) });
    expect([...(await pull(stingy))]).toEqual([...bundle]);
    expect((await pull(({ offset }) => ({ total: 0, offset, bytes: new Uint8Array(0) }))).byteLength).toBe(0);
  });

  it('refuses a chunk that lies about its place, its size or the whole', async () => {
    const cases: [string, Reply][] = [
      ['offset', (r) => ({ ...(honest(r) as object), offset: r.offset + 1 })],
      ['more than this run', (r) => ({ ...(honest(r) as object), total: 101 })],
      ['total changed', (r) => ({ ...(honest(r) as object), total: r.offset === 0 ? 10 : 9 })],
      ['more than the', (r) => ({ total: 10, offset: r.offset, bytes: bundle.slice(r.offset, r.offset + 5) })],
      ['empty chunk', (r) => ({ total: 10, offset: r.offset, bytes: new Uint8Array(0) })],
      ['past the end', (r) => ({ total: 10, offset: r.offset, bytes: r.offset === 8 ? new Uint8Array(4) : bundle.slice(r.offset, r.offset + 4) })],
    ];
    for (const [why, reply] of cases) await expect(pull(reply), why).rejects.toMatchObject({ failure: 'invalid', message: expect.stringContaining(why) });
  });
});

describe('BundleTransfer deadlines', () => {
  const big = new Uint8Array(250_000); // one second on the slowest link allowed (2 Mbit/s)
  const steady: Reply = ({ offset, maxBytes }) => ({ total: big.byteLength, offset, bytes: big.slice(offset, offset + maxBytes) });

  it('a slow but steady upload gets its bytes\' time on the slowest link; a silent tab fails after the base timeout', async () => {
    const t = new BundleTransfer(50_000, 1e6);
    const t0 = Date.now();
    // 5 chunks 40 ms apart: 200 ms, four times the 50 ms base.
    expect((await t.pull(fakeTab(steady, 40), { event: 'get_weights', parts: 'state' }, 50)).byteLength).toBe(big.byteLength);
    expect(Date.now() - t0).toBeGreaterThan(150);
    await expect(t.pull(fakeTab(() => undefined), { event: 'get_weights', parts: 'state' }, 50)).rejects.toMatchObject({ failure: 'timeout' });
  });
});

describe('a swarm whose uploads travel in 4 KiB chunks', () => {
  const swarm = testSwarm();
  const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 2, microbatches: 4, batch: 2, recovery: 'checkfree' };
  const N = 3;
  let reference: number[] = [];
  beforeAll(async () => {
    await useNodeBackend('wasm');
    reference = (await trainLocal({ ...settings, steps: N, evalEvery: 1000, evalBatches: 1, swap: false })).trainLosses;
  }, 120_000);

  it('copies replica states and combines gradients exactly: the loss equals the local trainer', async () => {
    const coord = (swarm.coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, evalEvery: 0, maxIterations: N, rebalanceEvery: 0, transferChunkBytes: 4096 }));
    const url = await coord.listen();
    coord.scheduler.setPaused(true);
    for (let i = 0; i < 2; i++) swarm.vols.push(await startNodeVolunteer(url, { name: `first${i}` }));
    await until(() => coord.stages.activeCount() === 2, 'both stages served');
    // These two join groups: each copies a replica's full state (~100 chunks) before training.
    for (let i = 0; i < 2; i++) swarm.vols.push(await startNodeVolunteer(url, { name: `second${i}` }));
    await until(() => coord.stages.activeCount() === 4, 'groups of two');
    coord.scheduler.setPaused(false);
    coord.scheduler.kick();
    await until(() => coord.scheduler.iteration >= N, `${N} iterations`, 120_000);
    const losses = coord.scheduler.history.map((h) => h.trainLoss);
    for (let i = 0; i < N; i++) expect(Math.abs(losses[i]! - reference[i]!) / reference[i]!).toBeLessThan(1e-4);
    expect(await coord.metrics.text()).toMatch(/swarm_reduction_bytes_total [1-9]\d{4,}/);
  });
});
