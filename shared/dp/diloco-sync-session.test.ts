import { describe, it, expect } from 'vitest';
import { DilocoReplica } from './diloco-replica.js';
import { DilocoSyncSession } from './diloco-sync-session.js';
import { PseudoGradSum } from './pseudo-grad-sum.js';
import { encodeSyncChunk, decodeSyncChunk, syncRoundTrip } from './sync-chunks.js';
import { outerNesterovStep } from './outer-nesterov.js';
import { averageInOrder } from './average.js';
import { encodeDilocoState, decodeDilocoState } from './diloco-state.js';
import { FrameError } from '../protocol/frame-error.js';
import { normalArray } from '../model/rng.js';

const N = 700;
const CHUNK = 256;
const hyper = { lr: 0.7, momentum: 0.9, wire: 'int8' as const };

describe('DilocoSyncSession: one whole sync through frames and the streaming sum', () => {
  it('every replica ends with the same bytes, equal to the maths done directly', () => {
    const w0 = normalArray(N, 0.02, 1);
    const replicas = [0, 1, 2].map(() => DilocoReplica.start(3, w0, hyper, CHUNK));
    const current = [0, 1, 2].map((i) => {
      const w = Float32Array.from(w0);
      const d = normalArray(N, 0.003, 20 + i);
      for (let j = 0; j < N; j++) w[j]! -= d[j]!;
      return w;
    });
    // Tabs upload; the coordinator decodes, sums streaming and encodes each mean chunk once.
    const sessions = replicas.map((r, i) => new DilocoSyncSession(r, 39, current[i]!));
    const sum = new PseudoGradSum([0, 1, 2], N, { chunkValues: CHUNK });
    expect(sessions[0]!.chunkCount).toBe(3);
    for (const c of [...sum.chunks].reverse()) {
      for (const i of [2, 0, 1]) {
        const data = decodeSyncChunk(sessions[i]!.uplink(c.index), { stage: 3, iteration: 39, direction: 'up', wire: 'int8' }, c);
        const done = sum.add(i, c.index, data);
        if (done) for (const s of sessions) s.acceptMean(c.index, encodeSyncChunk({ stage: 3, iteration: 39, direction: 'down', wire: 'int8' }, done.chunk, done.mean));
      }
    }
    const next = sessions.map((s) => s.apply());
    expect(() => sessions[0]!.apply()).toThrow(/already applied/);
    expect(next[1]).toEqual(next[0]);
    expect(next[2]).toEqual(next[0]);
    expect(replicas[2]!.state()).toEqual(replicas[0]!.state());
    // The same numbers computed without frames or chunking.
    const addr = { stage: 3, iteration: 39, direction: 'up' as const, wire: 'int8' as const };
    const mean = syncRoundTrip(averageInOrder(current.map((w) => syncRoundTrip(replicas[0]!.state().synced.map((_, j) => w0[j]! - w[j]!), addr, CHUNK))), { ...addr, direction: 'down' }, CHUNK);
    const synced = Float32Array.from(w0);
    const m = new Float32Array(N);
    outerNesterovStep(synced, m, mean, hyper);
    expect(next[0]).toEqual(synced);
    expect(replicas[0]!.state().momentum).toEqual(m);
    expect(replicas[0]!.state().syncs).toBe(1);
  });

  it('refuses bad or missing averaged chunks and changes nothing until apply', () => {
    const r = DilocoReplica.start(0, normalArray(N, 1, 2), hyper, CHUNK);
    const before = r.state();
    const s = new DilocoSyncSession(r, 9, normalArray(N, 1, 3));
    const up0 = s.uplink(0);
    expect(s.uplink(0)).toEqual(up0); // answered from one snapshot
    expect(() => s.acceptMean(0, up0)).toThrow(FrameError); // an uplink frame is not a downlink one
    const mean = normalArray(N, 0.01, 4);
    const down = { stage: 0, iteration: 9, direction: 'down' as const, wire: 'int8' as const };
    const chunks = r.chunks();
    expect(() => s.acceptMean(1, encodeSyncChunk(down, chunks[0]!, mean.subarray(0, CHUNK)))).toThrow(FrameError); // chunk 0 sent as 1
    expect(() => s.acceptMean(0, encodeSyncChunk({ ...down, iteration: 8 }, chunks[0]!, mean.subarray(0, CHUNK)))).toThrow(/iteration/);
    s.acceptMean(0, encodeSyncChunk(down, chunks[0]!, mean.subarray(0, CHUNK)));
    expect(() => s.acceptMean(0, encodeSyncChunk(down, chunks[0]!, mean.subarray(0, CHUNK)))).toThrow(/twice/);
    expect(() => s.uplink(7)).toThrow(/out of range/);
    expect(s.missing()).toEqual([1, 2]);
    expect(() => s.apply()).toThrow(/chunks 1, 2 missing/);
    expect(r.state()).toEqual(before);
    expect(() => new DilocoSyncSession(r, 9, new Float32Array(N - 1))).toThrow(RangeError);
  });

  it('the join state round-trips and is checked', () => {
    const r = DilocoReplica.start(1, normalArray(N, 1, 4), hyper, CHUNK);
    r.applyMean(normalArray(N, 0.01, 5));
    const s = r.state();
    const bytes = encodeDilocoState(s);
    expect(decodeDilocoState(bytes, N)).toEqual(s);
    expect(() => decodeDilocoState(bytes, N + 1)).toThrow(/expected 701/);
    expect(() => decodeDilocoState(new Uint8Array(40), N)).toThrow(FrameError);
    expect(() => encodeDilocoState({ ...s, syncs: 1.5 })).not.toThrow();
    expect(() => decodeDilocoState(encodeDilocoState({ ...s, syncs: 1.5 }), N)).toThrow(/non-negative integer/);
  });
});
