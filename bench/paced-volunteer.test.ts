import { describe, it, expect } from 'vitest';
import { createServer } from 'node:http';
import { Server, type Socket } from 'socket.io';
import { PacedVolunteer, frameTemplate } from './paced-volunteer.js';
import { decodeSyncChunk, syncChunks, SYNC_CHUNK_VALUES } from '../shared/dp/sync-chunks.js';
import { decodeDilocoState } from '../shared/dp/diloco-state.js';

describe('PacedVolunteer in diloco syncs', () => {
  it('answers dp_sync_get with a valid uplink chunk of the true size for its stage, and dp_state with a state of the true size', async () => {
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
      await ask('assign', { stage: 2 });
      const chunks = syncChunks(P);
      for (const c of chunks) {
        const r = await ask<{ frame: Uint8Array }>('dp_sync_get', { iteration: 41, chunk: c.index });
        expect(decodeSyncChunk(r.frame, { stage: 2, iteration: 41, direction: 'up', wire: 'int8' }, c).length).toBe(c.count);
      }
      expect(await ask('dp_sync_get', { iteration: 41, chunk: 2 })).toEqual({ error: 'chunk 2 out of range' });
      expect(await ask('dp_sync_get', { iteration: -1, chunk: 0 })).toEqual({ error: 'bad dp_sync_get' });
      expect(await ask('dp_sync_put', { iteration: 41, chunk: 0 }, new Uint8Array(4))).toEqual({ ok: true });
      expect(await ask('dp_sync_apply', { iteration: 41 })).toEqual({ ok: true, syncs: 1 });
      const st = await ask<{ bundle: Uint8Array }>('dp_state', {});
      expect(decodeDilocoState(st.bundle, P, { maxBytes: 64 << 20 }).syncs).toBe(1);
    } finally {
      v.close();
      ioServer.close();
      http.close();
    }
  }, 30_000);
});
