/**
 * A joiner behind a slow link receives a stage state larger than the heartbeat allows one message
 * to take (bundle-push.ts). Sent as one socket message the coordinator's ping waited behind it and
 * the joiner was dropped as silent while it was receiving; in pieces it is placed, connected, and
 * holds its donor's exact weights. Small and fast: `tiny` as one stage (295 k parameters, a
 * 1.18 MB state before the first step) over a 1.5 Mbit/s link (6.3 s) against a 2 s heartbeat.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { startNodeVolunteer } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../../shared/run-settings.js';
import { useNodeBackend } from '../../trainer/node-backend.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';
import { StagedBundle } from '../../shared/volunteer/staged-bundle.js';
import { pushStaged, PUSH_WINDOW } from './bundle-push.js';
import type { Volunteer } from './registry.js';

/** A tab that keeps pieces in a StagedBundle after `delayMs`; `refuseAt`: it refuses the piece at that offset. */
function fakeTab(opts: { delayMs?: number; refuseAt?: number } = {}) {
  const staged = new StagedBundle();
  const stats = { pieces: [] as number[], inFlight: 0, maxInFlight: 0 };
  const socket = {
    connected: true,
    once: () => {},
    off: () => {},
    emit: (event: string, info: { offset: number; total: number }, bytes: Uint8Array, ack: (r: unknown) => void) => {
      if (event !== 'put_bundle_chunk') throw new Error(`unexpected ${event}`);
      stats.inFlight++;
      stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
      setTimeout(() => {
        stats.inFlight--;
        stats.pieces.push(info.offset);
        if (info.offset === opts.refuseAt) return ack({ ok: false, error: 'out of memory' });
        try {
          staged.put(info, bytes);
          ack({ ok: true });
        } catch (e) {
          ack({ ok: false, error: (e as Error).message });
        }
      }, opts.delayMs ?? 1);
    },
  };
  const v = { id: 'fake', socket } as unknown as Volunteer;
  return { v, staged, stats };
}

const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 1, microbatches: 2, batch: 1, recovery: 'checkfree' };
const swarm = testSwarm();

beforeAll(() => useNodeBackend('wasm'));

describe('a large state pushed over a slow link', () => {
  it('reaches a joiner in pieces: it is not dropped by the 2 s heartbeat and holds the donor\'s weights', async () => {
    const coord = (swarm.coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, evalEvery: 0, heartbeatTimeoutMs: 2000, graceMs: 100, transferChunkBytes: 64 * 1024, publicHosts: ['127.0.0.1'] })); // the emulator's port in the Host header
    const url = await coord.listen();
    coord.scheduler.setPaused(true); // nothing trains: the donor's weights stay what it sends
    const donor = await startNodeVolunteer(url, { name: 'donor' });
    swarm.vols.push(donor);
    await until(() => coord.stages.activeCount() === 1, 'the donor placed', 30_000);
    const t0 = Date.now();
    const joiner = await startNodeVolunteer(url, { name: 'joiner', link: { upMbps: 1.5, downMbps: 1.5, latencyMs: 5, queueBytes: 32 * 1024 } });
    swarm.vols.push(joiner);
    await until(() => coord.stages.activeCount() === 2 || coord.events.list('leave').length > 0, 'the joiner placed or dropped', 60_000);
    const left = coord.events.list('leave').map((e) => e.message);
    expect(left.join('; ')).toBe('');
    expect(coord.stages.activeCount()).toBe(2);
    // It really crossed the slow link (1.18 MB at 1.5 Mbit/s takes 6.3 s, three heartbeat timeouts).
    expect(joiner.link!.delivered.down).toBeGreaterThan(1_150_000);
    expect(Date.now() - t0).toBeGreaterThan(5000);
    // Still connected two heartbeats later, and holding the donor's weights bit for bit.
    await new Promise((r) => setTimeout(r, 4000));
    expect(coord.events.list('leave')).toEqual([]);
    const a = donor.agent.currentStage!.getWeights();
    const b = joiner.agent.currentStage!.getWeights();
    for (const [name, w] of Object.entries(a)) expect(Buffer.from(b[name]!.buffer).equals(Buffer.from(w.buffer))).toBe(true);
  }, 120_000);
});

describe('pushStaged (the coordinator\'s side)', () => {
  it('sends a bundle larger than a piece in order, at most PUSH_WINDOW pieces unacknowledged; the tab holds the same bytes', async () => {
    const tab = fakeTab({ delayMs: 3 });
    const bytes = Uint8Array.from({ length: 10_000 }, (_, i) => (i * 7) % 251);
    expect(await pushStaged(tab.v, bytes, 1024)).toBe(true);
    expect(tab.stats.pieces).toEqual(Array.from({ length: 10 }, (_, k) => k * 1024));
    expect(tab.stats.maxInFlight).toBe(PUSH_WINDOW);
    expect(Buffer.from(tab.staged.take()).equals(Buffer.from(bytes))).toBe(true);
  });

  it('leaves a bundle that fits one piece to go inline, and throws when a piece is refused', async () => {
    const small = fakeTab();
    expect(await pushStaged(small.v, new Uint8Array(1024), 1024)).toBe(false);
    expect(small.stats.pieces).toEqual([]);
    const refusing = fakeTab({ refuseAt: 2048 });
    await expect(pushStaged(refusing.v, new Uint8Array(8192), 1024)).rejects.toThrow(/refused put_bundle_chunk: out of memory/);
    expect(() => refusing.staged.take()).toThrow(); // nothing complete was left behind
  });
});

describe('StagedBundle (the tab\'s side)', () => {
  it('assembles pieces in order and hands the bundle over once', () => {
    const s = new StagedBundle();
    s.put({ offset: 0, total: 5 }, Uint8Array.of(1, 2));
    s.put({ offset: 2, total: 5 }, Uint8Array.of(3, 4, 5));
    expect([...s.take()]).toEqual([1, 2, 3, 4, 5]);
    expect(() => s.take()).toThrow(/no staged bundle/);
  });

  it('refuses a gap, an overrun, a changed total, an incomplete take, and forgets the partial bundle', () => {
    const s = new StagedBundle(100);
    s.put({ offset: 0, total: 4 }, Uint8Array.of(1));
    expect(() => s.put({ offset: 2, total: 4 }, Uint8Array.of(2))).toThrow(/expected 1/);
    expect(() => s.take()).toThrow(/no staged bundle/); // the failed piece dropped it
    s.put({ offset: 0, total: 4 }, Uint8Array.of(1, 2));
    expect(() => s.take()).toThrow(/incomplete: 2 of 4/);
    expect(() => s.put({ offset: 0, total: 2 }, Uint8Array.of(1, 2, 3))).toThrow(/past the end/);
    s.put({ offset: 0, total: 4 }, Uint8Array.of(1, 2));
    expect(() => s.put({ offset: 2, total: 5 }, Uint8Array.of(3))).toThrow(/total 5/);
    expect(() => s.put({ offset: 0, total: 101 }, Uint8Array.of(1))).toThrow(/bad total/);
    expect(() => s.put({ offset: 0, total: 3 }, new Uint8Array(0))).toThrow(/no bytes/);
    expect(() => s.put({ offset: 1, total: 3 }, Uint8Array.of(1))).toThrow(/before its first piece/);
    expect(() => s.put({ offset: 0, total: Number.NaN }, Uint8Array.of(1))).toThrow(/bad total/);
  });
});
