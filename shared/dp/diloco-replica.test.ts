import { describe, it, expect } from 'vitest';
import { DilocoReplica } from './diloco-replica.js';
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

describe('DilocoReplica: one whole sync through frames and the streaming sum', () => {
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
    const sum = new PseudoGradSum([0, 1, 2], N, { chunkValues: CHUNK });
    const down: Uint8Array[] = [];
    const upFrames = replicas.map((r, i) => r.upload(current[i]!, 39));
    for (const c of sum.chunks) {
      for (const i of [2, 0, 1]) {
        const data = decodeSyncChunk(upFrames[i]![c.index]!, { stage: 3, iteration: 39, direction: 'up', wire: 'int8' }, c);
        const done = sum.add(i, c.index, data);
        if (done) down[c.index] = encodeSyncChunk({ stage: 3, iteration: 39, direction: 'down', wire: 'int8' }, done.chunk, done.mean);
      }
    }
    const next = replicas.map((r) => r.applyMeanFrames(down, 39));
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

  it('a bad averaged chunk changes nothing', () => {
    const r = DilocoReplica.start(0, normalArray(N, 1, 2), hyper, CHUNK);
    const before = r.state();
    const frames = r.upload(normalArray(N, 1, 3), 9); // uplink frames are not downlink ones
    expect(() => r.applyMeanFrames(frames, 9)).toThrow(FrameError);
    expect(() => r.applyMeanFrames(frames.slice(1), 9)).toThrow(/expected 3/);
    expect(r.state()).toEqual(before);
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
