import { describe, it, expect } from 'vitest';
import { createServer } from 'node:http';
import { Server, type Socket } from 'socket.io';
import { PacedVolunteer, frameTemplate } from './paced-volunteer.js';
import { decodeSyncChunk, syncChunks, SYNC_CHUNK_VALUES } from '../shared/dp/sync-chunks.js';
import { decodeDilocoState } from '../shared/dp/diloco-state.js';
import { DEFAULT_DP } from '../shared/dp/dp-settings.js';
import { fragmentRanges } from '../shared/dp/streaming.js';
import { DEFAULT_SETTINGS, modelConfigOf } from '../shared/run-settings.js';
import { stageParamSpecs } from '../shared/model/params.js';
import { flatLength } from '../shared/dp/flat-weights.js';
import { checkStageState, checkWeights } from '../coordinator/tabs/bundle-check.js';
import { BundleTransfer } from '../coordinator/tabs/bundle-transfer.js';
import type { Volunteer } from '../coordinator/tabs/registry.js';

describe('PacedVolunteer in diloco syncs', () => {
  it('answers dp_sync_get with a valid uplink chunk of the true size for its stage, and get_weights diloco with a state of the true size', async () => {
    const http = createServer();
    const ioServer = new Server(http, { maxHttpBufferSize: 64 << 20 });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const port = (http.address() as { port: number }).port;
    const P = SYNC_CHUNK_VALUES + 1000; // two chunks, the second short
    const connected = new Promise<Socket>((r) => ioServer.on('connection', r));
    const v = new PacedVolunteer(`http://127.0.0.1:${port}`, frameTemplate('act', [1, 8], 'int8'), frameTemplate('grad', [1, 8], 'int8'), { forwardMs: 1, codecMs: 1 }, { params: () => P, wire: 'int8' });
    try {
      const sock = await connected;
      const ask = <T>(ev: string, ...args: unknown[]) => sock.timeout(10_000).emitWithAck(ev, ...args) as Promise<T>;
      const config = modelConfigOf({ ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4 });
      await ask('assign', { stage: 2, config, lr: 1e-3 });
      const chunks = syncChunks(P);
      for (const c of chunks) {
        const r = await ask<{ frame: Uint8Array }>('dp_sync_get', { iteration: 41, chunk: c.index });
        expect(decodeSyncChunk(r.frame, { stage: 2, iteration: 41, direction: 'up', wire: 'int8' }, c).length).toBe(c.count);
      }
      expect(await ask('dp_sync_get', { iteration: 41, chunk: 2 })).toEqual({ error: 'chunk 2 out of range' });
      expect(await ask('dp_sync_get', { iteration: -1, chunk: 0 })).toEqual({ error: 'bad dp_sync_get' });
      expect(await ask('dp_sync_put', { iteration: 41, chunk: 0 }, new Uint8Array(4))).toEqual({ ok: true });
      expect(await ask('dp_sync_apply', { iteration: 41 })).toEqual({ ok: true, syncs: 1 });
      // The outer state a joiner copies: pulled in chunks like every upload, of the stage's true size.
      const transfer = new BundleTransfer(4096, 64 << 20);
      const asVolunteer = { id: 'paced', socket: sock } as unknown as Volunteer;
      const n = flatLength(stageParamSpecs(config, 2));
      expect(decodeDilocoState(await transfer.pull(asVolunteer, { event: 'get_weights', parts: 'diloco' }, 10_000), n).synced.length).toBe(n);
      expect(await ask('dp_set_state', { stage: 2 }, new Uint8Array(8))).toEqual({ ok: true });
      expect(await ask('dp_set_state', { stage: 1 }, new Uint8Array(8))).toEqual({ error: 'bad dp_set_state' });
      // Streaming DiLoCo (the plan rides on the assignment): the chunks of the fragment due after the iteration.
      await ask('assign', { stage: 2, config, lr: 1e-3, dp: { ...DEFAULT_DP, mode: 'diloco', every: 4, fragments: 2, overlap: 1 } });
      const frag = fragmentRanges(P, 2)[1]!; // after iteration 1: (1 + 1) mod 4 = 2 = floor(1 * 4 / 2)
      expect(frag.count).toBeLessThan(SYNC_CHUNK_VALUES);
      const c0 = syncChunks(frag.count)[0]!;
      const r = await ask<{ frame: Uint8Array }>('dp_sync_get', { iteration: 1, chunk: 0 });
      expect(decodeSyncChunk(r.frame, { stage: 2, iteration: 1, direction: 'up', wire: 'int8' }, c0).length).toBe(frag.count);
      expect(await ask('dp_sync_get', { iteration: 1, chunk: 1 })).toEqual({ error: 'chunk 1 out of range' });
    } finally {
      v.close();
      ioServer.close();
      http.close();
    }
  }, 30_000);

  it('uploads a full stage state and a gradient that pass the coordinator\'s checks, and answers the fingerprint alike for replicas of one sync', async () => {
    const http = createServer();
    const ioServer = new Server(http, { maxHttpBufferSize: 64 << 20 });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const port = (http.address() as { port: number }).port;
    const socks: Socket[] = [];
    ioServer.on('connection', (s) => socks.push(s));
    const config = modelConfigOf({ ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4 });
    const mk = () => new PacedVolunteer(`http://127.0.0.1:${port}`, frameTemplate('act', [1, 8], 'int8'), frameTemplate('grad', [1, 8], 'int8'), { forwardMs: 1, codecMs: 1 });
    const vs = [mk(), mk()];
    try {
      await new Promise<void>((r) => { const t = setInterval(() => socks.length === 2 && (clearInterval(t), r()), 10); });
      const ask = <T>(s: Socket, ev: string, ...args: unknown[]) => s.timeout(10_000).emitWithAck(ev, ...args) as Promise<T>;
      for (const s of socks) await ask(s, 'assign', { stage: 0, config, lr: 2e-3 });
      const transfer = new BundleTransfer(1000, 64 << 20);
      const v0 = { id: 'paced-0', socket: socks[0] } as unknown as Volunteer;
      const state = checkStageState(config, 0, await transfer.pull(v0, { event: 'get_weights', parts: 'state' }, 10_000));
      expect(state.optimizer?.lr).toBeCloseTo(2e-3);
      expect(Object.keys(state.weights).sort()).toEqual(stageParamSpecs(config, 0).map((p) => p.name).sort());
      checkWeights(config, 0, await transfer.pull(v0, { event: 'get_grads', iteration: 3 }, 10_000));
      checkWeights(config, 0, await transfer.pull(v0, { event: 'get_weights', parts: 'embed' }, 10_000), { only: (nm) => nm.startsWith('embed.') });
      expect(await ask(socks[0]!, 'get_weights', { parts: 'replica:head', offset: 0, maxBytes: 100 })).toEqual({ error: 'no replica:head held' });
      expect(await ask(socks[0]!, 'put_replica', { part: 'head' }, new Uint8Array([1, 2, 3]))).toEqual({ ok: true });
      const c = await ask<{ total: number; offset: number; bytes: Uint8Array }>(socks[0]!, 'get_weights', { parts: 'replica:head', offset: 1, maxBytes: 100 });
      expect([c.total, c.offset, [...c.bytes]]).toEqual([3, 1, [2, 3]]);
      const d0 = await ask<{ digest: string }>(socks[0]!, 'weights_digest', { iteration: 9 });
      const d1 = await ask<{ digest: string }>(socks[1]!, 'weights_digest', { iteration: 9 });
      expect(d0).toEqual(d1);
    } finally {
      for (const v of vs) v.close();
      ioServer.close();
      http.close();
    }
  }, 30_000);
});
