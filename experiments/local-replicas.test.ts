import { describe, it, expect, beforeAll } from 'vitest';
import { useNodeBackend } from '../trainer/node-backend.js';
import { runIteration } from '../trainer/pipeline.js';
import { loadDataset } from '../trainer/corpus-file.js';
import { DEFAULT_SETTINGS, modelConfigOf } from '../shared/run-settings.js';
import { Stage, type NamedWeights } from '../shared/model/stage.js';
import { isBlockParam } from '../shared/model/params.js';
import { LocalReplicaStore, recoverLocally } from './local-recovery.js';
import { seedInitialWeights } from '../shared/recovery/rebuild.js';
import { RecoveryError } from '../shared/recovery/errors.js';

beforeAll(async () => {
  await useNodeBackend('wasm');
});

const LR = DEFAULT_SETTINGS.lr;

/** A tiny-preset pipeline with a 1-microbatch x 2-sequence iteration (fast: this is about bookkeeping). */
function pipeline(stages: number) {
  const cfg = modelConfigOf({ ...DEFAULT_SETTINGS, stages });
  const { dataset } = loadDataset({ seqLen: cfg.seqLen });
  const s = Array.from({ length: stages }, (_, i) => new Stage(cfg, i, { lr: LR }));
  const step = (it: number) => runIteration(s, [dataset.trainBatch(1, it, 0, 2)], { swap: true, iteration: it });
  return { cfg, stages: s, step };
}

const copyOf = (w: Float32Array) => w.slice();
const blocks = (w: NamedWeights) => Object.fromEntries(Object.entries(w).filter(([n]) => isBlockParam(n)));

describe('LocalReplicaStore and recoverLocally', () => {
  it('seedInitialWeights is what a fresh Stage starts from', () => {
    const cfg = modelConfigOf(DEFAULT_SETTINGS);
    const st = new Stage(cfg, 3);
    expect(st.getWeights()).toEqual(seedInitialWeights(cfg, 3));
    st.dispose();
  });

  it('refreshes only on due iterations; a lost first stage gets the embedding of the last refresh', () => {
    const { stages, step } = pipeline(4);
    const store = new LocalReplicaStore(4, 5);
    const refreshedAt: number[] = [];
    let embedAt5: Float32Array | null = null;
    let headAt5: Float32Array | null = null;
    if (store.maybeRefresh(stages, 0)) refreshedAt.push(0);
    const embedAt0 = copyOf(stages[0]!.getWeights()['embed.weight']!);
    expect(store.get(1)!.embed!['embed.weight']).toEqual(embedAt0);
    for (let t = 1; t <= 7; t++) {
      step(t - 1);
      if (store.maybeRefresh(stages, t)) refreshedAt.push(t);
      if (t === 3) expect(store.get(1)!.embed!['embed.weight']).toEqual(embedAt0); // not refreshed in between
      if (t === 5) {
        embedAt5 = copyOf(stages[0]!.getWeights()['embed.weight']!);
        headAt5 = copyOf(stages[3]!.getWeights()['head.lm_head']!);
      }
    }
    expect(refreshedAt).toEqual([0, 5]);
    expect(store.lastRefresh).toBe(5);
    expect(Object.keys(store.all()).sort()).toEqual(['1', '2']);
    const liveEmbed = stages[0]!.getWeights()['embed.weight']!;
    expect(liveEmbed).not.toEqual(embedAt5); // two more iterations changed the live embedding

    const stage1Blocks = blocks(stages[1]!.getWeights());
    const ev = recoverLocally(stages, 0, 'checkfree+', { lr: LR, replicas: store });
    const rebuilt = stages[0]!.getWeights();
    expect(rebuilt['embed.weight']).toEqual(embedAt5);
    expect(rebuilt['embed.weight']).not.toEqual(liveEmbed);
    expect(blocks(rebuilt)).toEqual(stage1Blocks);
    expect(ev).toMatchObject({ stage: 0, method: 'copy', sources: [1], replicaSource: 1, fallback: false, fromSeed: [] });
    expect(ev.lr).toBeCloseTo(1.1 * LR, 12);
    expect(stages[0]!.lr).toBeCloseTo(1.1 * LR, 12);
    expect(stages[0]!.optimizerStep()).toBe(0);
    expect(stages[0]!.lastNorms).toBeNull();
    expect(ev.bytes).toBe(4 * (256 * 64) + Object.values(stage1Blocks).reduce((n, v) => n + v.byteLength, 0));

    // The last stage the same way, from the head replica held by stage 2.
    const ev3 = recoverLocally(stages, 3, 'checkfree+', { lr: LR, replicas: store, lrScale: 1.2 });
    expect(stages[3]!.getWeights()['head.lm_head']).toEqual(headAt5);
    expect(ev3).toMatchObject({ method: 'copy', sources: [2], replicaSource: 2 });
    expect(stages[3]!.lr).toBeCloseTo(1.2 * LR, 12);

    // Training goes on with the rebuilt stages.
    expect(Number.isFinite(step(7).loss)).toBe(true);
    stages.forEach((s) => s.dispose());
  });

  it('a lost holder loses its replicas and re-takes them from the live owner once rebuilt', () => {
    const { stages, step } = pipeline(4);
    const store = new LocalReplicaStore(4, 10);
    store.maybeRefresh(stages, 0);
    step(0);
    step(1);
    const stale = copyOf(store.get(1)!.embed!['embed.weight']!);
    const live = copyOf(stages[0]!.getWeights()['embed.weight']!);
    expect(stale).not.toEqual(live);
    const n0 = stages[0]!.lastNorms!;
    const n2 = stages[2]!.lastNorms!;
    // Plain checkfree averages stage 1 (checkfree+ would copy its swap partner, stage 0).
    const ev = recoverLocally(stages, 1, 'checkfree', { lr: LR, replicas: store, weighting: 'pre-clip' });
    expect(ev).toMatchObject({ method: 'average', sources: [0, 2], weighting: 'pre-clip', replicaSource: null });
    // Weighed by the raw norm of the block gradient: post-clip block norm / clip coefficient.
    const rawBlock = (n: typeof n0) => (n.blockNorm! * n.preClipNorm) / n.postClipNorm;
    expect(ev.a).toBeCloseTo(rawBlock(n2) + 1e-4, 6);
    expect(ev.b).toBeCloseTo(rawBlock(n0) + 1e-4, 6);
    expect(rawBlock(n0)).toBeLessThan(n0.preClipNorm); // stage 0's embedding gradient is left out
    expect(store.get(1)!.embed!['embed.weight']).toEqual(live);
    stages.forEach((s) => s.dispose());
  });

  it('2 stages with swap: the lost last stage is rebuilt from stage 0 and the head replica on stage 0', () => {
    const { stages, step } = pipeline(2);
    const store = new LocalReplicaStore(2, 2);
    store.maybeRefresh(stages, 0);
    for (let t = 1; t <= 3; t++) {
      step(t - 1);
      store.maybeRefresh(stages, t);
    }
    const head = copyOf(store.get(0)!.head!['head.lm_head']!);
    const b0 = blocks(stages[0]!.getWeights());
    const ev = recoverLocally(stages, 1, 'checkfree+', { lr: LR, replicas: store });
    expect(ev).toMatchObject({ method: 'copy', sources: [0], replicaSource: 0 });
    const w1 = stages[1]!.getWeights();
    expect(w1['head.lm_head']).toEqual(head);
    expect(blocks(w1)).toEqual(b0);
    expect(Number.isFinite(step(3).loss)).toBe(true);
    stages.forEach((s) => s.dispose());
  });

  it('checkfree re-inits a lost edge stage from the seed; checkpoint is refused untouched', () => {
    const { cfg, stages, step } = pipeline(4);
    step(0);
    const ev = recoverLocally(stages, 3, 'checkfree', { lr: LR });
    expect(ev).toMatchObject({ method: 'reinit', fallback: true, bytes: 0, sources: [] });
    expect(stages[3]!.getWeights()).toEqual(seedInitialWeights(cfg, 3));
    const before = stages[2]!;
    expect(() => recoverLocally(stages, 2, 'checkpoint', { lr: LR })).toThrow(RecoveryError);
    expect(stages[2]).toBe(before);
    expect(Number.isFinite(step(1).loss)).toBe(true);
    stages.forEach((s) => s.dispose());
  });
});
