import { describe, it, expect, beforeAll } from 'vitest';
import { useNodeBackend } from './node-backend.js';
import { trainLocal, type LocalTrainOptions } from './cli.js';
import { runReplicatedIteration, dilocoSync, startDiloco } from './replicated-pipeline.js';
import { DEFAULT_SETTINGS, modelConfigOf } from '../shared/run-settings.js';
import { Stage } from '../shared/model/stage.js';
import { loadDataset } from './corpus-file.js';
import { roundRobinAssignment } from '../shared/dp/replica-assignment.js';
import { flattenWeights } from '../shared/dp/flat-weights.js';
import { DEFAULT_DP } from '../shared/dp/dp-settings.js';
import { maxRelErr } from '../testing/numerics.js';
import { DilocoReference } from './diloco-reference.js';
import { fragmentRanges } from '../shared/dp/streaming.js';

beforeAll(async () => {
  await useNodeBackend('wasm');
});

// tiny preset (d_model 64, 4 layers), 4 stages, 4 microbatches of 1 sequence of 32 tokens.
const base: LocalTrainOptions = { ...DEFAULT_SETTINGS, batch: 1, seqLen: 32, steps: 6, evalEvery: 3, evalBatches: 2, swap: true, wire: 'f32' };

function relDiff(a: number[], b: number[]): number {
  return Math.max(...a.map((x, i) => Math.abs(x - b[i]!) / Math.abs(b[i]!)));
}

describe('the local trainer with replicas', () => {
  it('exact mode with 2 replicas per stage equals today\'s local trainer (< 1e-5 relative: only float32 summation order differs)', async () => {
    const one = await trainLocal(base);
    const two = await trainLocal({ ...base, replicas: 2, dp: { mode: 'exact' } });
    expect(relDiff(two.trainLosses, one.trainLosses)).toBeLessThan(1e-5);
    expect(relDiff(two.valLosses.map((v) => v.loss), one.valLosses.map((v) => v.loss))).toBeLessThan(1e-5);
    for (const [s, w] of one.finalWeights.entries()) for (const [n, a] of Object.entries(w)) expect(maxRelErr(two.finalWeights[s]![n]!, a), `${s} ${n}`).toBeLessThan(1e-4);
    // and it trained: the losses moved
    expect(one.trainLosses[5]).toBeLessThan(one.trainLosses[0]!);
  }, 120_000);

  it('diloco with one replica, outer lr 1, momentum 0 and f32 syncs every iteration equals plain training', async () => {
    const plain = await trainLocal(base);
    const d = await trainLocal({ ...base, dp: { mode: 'diloco', every: 1, outerLr: 1, outerMomentum: 0, wire: 'f32' } });
    expect(relDiff(d.trainLosses, plain.trainLosses)).toBeLessThan(1e-6);
  }, 120_000);

  it('Streaming DiLoCo with one replica, outer lr 1, momentum 0, f32 and no overlap equals plain training (every fragment sync is a no-op)', async () => {
    const plain = await trainLocal(base);
    const d = await trainLocal({ ...base, dp: { mode: 'diloco', every: 2, outerLr: 1, outerMomentum: 0, wire: 'f32', fragments: 2, overlap: 0 } });
    expect(relDiff(d.trainLosses, plain.trainLosses)).toBeLessThan(1e-6);
  }, 120_000);

  it('replays a recorded assignment exactly, and a different assignment changes a diloco run', async () => {
    const dp = { mode: 'diloco' as const, every: 3 };
    const a = await trainLocal({ ...base, replicas: 2, dp });
    const again = await trainLocal({ ...base, replicas: 2, dp, assignment: JSON.stringify(a.assignment) });
    expect(again.trainLosses).toEqual(a.trainLosses);
    const allOnZero = structuredClone(a.assignment);
    allOnZero.iterations = allOnZero.iterations.map((row) => row.map((hops) => hops.map(() => 0)));
    const b = await trainLocal({ ...base, replicas: 2, dp, assignment: allOnZero });
    expect(b.trainLosses.slice(0, 1)).toEqual(a.trainLosses.slice(0, 1)); // same weights before any step
    expect(relDiff(b.trainLosses, a.trainLosses)).toBeGreaterThan(1e-4);
    await expect(trainLocal({ ...base, replicas: 2, dp, assignment: { ...a.assignment, replicas: [2, 2, 2] } })).rejects.toThrow(/for 3 stages/);
    await expect(trainLocal({ ...base, replicas: 0 })).rejects.toThrow(/replicas must be/);
    await expect(trainLocal({ ...base, dp: { mode: 'diloco', every: 0 } })).rejects.toThrow(/--dp-every/);
  }, 180_000);
});

describe('dilocoSync', () => {
  it('leaves every replica of a group with the same weights, the outer step of the mean pseudo-gradient (by hand, f32 sync)', () => {
    const o = { ...base, stages: 2, microbatches: 2 };
    const cfg = modelConfigOf(o);
    const { dataset } = loadDataset({ seqLen: cfg.seqLen });
    const groups = [0, 1].map((s) => [0, 1].map(() => new Stage(cfg, s, { lr: o.lr })));
    const dp = { ...DEFAULT_DP, mode: 'diloco' as const, wire: 'f32' as const };
    const outer = startDiloco(groups, dp, 4096);
    const w0 = groups.map((g) => flattenWeights(g[0]!.specs, g[0]!.getWeights()));
    const hops = roundRobinAssignment({ stages: 2, microbatches: 2, swap: true }, [2, 2], 2).iterations;
    for (let it = 0; it < 2; it++) {
      const batches = [0, 1].map((mb) => dataset.trainBatch(o.seed, it, mb, 1));
      runReplicatedIteration(groups, batches, { swap: true, iteration: it, hops: hops[it]!, mode: 'diloco' });
    }
    const before = groups.map((g) => g.map((r) => flattenWeights(r.specs, r.getWeights())));
    expect(maxRelErr(before[1]![0]!, before[1]![1]!)).toBeGreaterThan(0); // the replicas drifted apart
    const report = dilocoSync(groups, outer, 1, 'f32');
    groups.forEach((g, s) => {
      const after = g.map((r) => flattenWeights(r.specs, r.getWeights()));
      expect(after[1]).toEqual(after[0]);
      const want = w0[s]!.map((w, i) => {
        const avg = Math.fround(Math.fround(Math.fround(w - before[s]![0]![i]!) + Math.fround(w - before[s]![1]![i]!)) / 2);
        const m = Math.fround(avg); // zero momentum before: m = avg
        return Math.fround(w - 0.7 * (avg + 0.9 * m));
      });
      expect(after[0]).toEqual(want);
      expect(report.uplinkError[s]).toBe(0);
      expect(report.drift[s]).toBeGreaterThan(0);
    });
    groups.forEach((g) => g.forEach((r) => r.dispose()));
  });
});

describe('DilocoReference (Streaming DiLoCo schedule)', () => {
  it('F = 2, tau = 1: the sync started after iteration t is applied after t + 1, only its fragment, 0.5 local + 0.5 global (by hand, one replica, lr 1, momentum 0)', () => {
    const o = { ...base, stages: 2, microbatches: 2 };
    const cfg = modelConfigOf(o);
    const { dataset } = loadDataset({ seqLen: cfg.seqLen });
    const groups = [0, 1].map((s) => [new Stage(cfg, s, { lr: o.lr })]);
    const dp = { ...DEFAULT_DP, mode: 'diloco' as const, every: 2, fragments: 2, overlap: 1, outerLr: 1, outerMomentum: 0, wire: 'f32' as const };
    const ref = new DilocoReference(groups, startDiloco(groups, dp, 4096), dp);
    const hops = roundRobinAssignment({ stages: 2, microbatches: 2, swap: true }, [1, 1], 2).iterations;
    const flat = () => groups.map((g) => flattenWeights(g[0]!.specs, g[0]!.getWeights()));
    const train = (it: number) => runReplicatedIteration(groups, [0, 1].map((mb) => dataset.trainBatch(o.seed, it, mb, 1)), { swap: true, iteration: it, hops: hops[it]!, mode: 'diloco' });
    const init = flat();
    train(0);
    const after0 = flat();
    // after iteration 0: fragment 1 starts ((0 + 1) mod 2 = 1), nothing is applied yet
    expect(ref.afterStep(0)).not.toBeNull();
    expect(flat()).toEqual(after0);
    train(1);
    const trained1 = flat();
    ref.afterStep(1); // applies fragment 1's sync, starts fragment 0's
    const applied = flat();
    groups.forEach((g, s) => {
      const [f0, f1] = fragmentRanges(after0[s]!.length, 2);
      // fragment 0 untouched by the apply; fragment 1: with one replica, lr 1 and momentum 0 the
      // new global is the weights after iteration 0, mixed half and half with the weights now
      for (let i = f0!.start; i < f0!.start + f0!.count; i += 97) expect(applied[s]![i]).toBe(trained1[s]![i]);
      for (let i = f1!.start; i < f1!.start + f1!.count; i++) {
        const g = Math.fround(init[s]![i]! - after0[s]![i]!); // the pseudo-gradient, float32
        const globalNew = Math.fround(init[s]![i]! - 1 * (g + 0 * g)); // = after0 up to float32 rounding
        expect(applied[s]![i]).toBe(Math.fround(0.5 * trained1[s]![i]! + 0.5 * globalNew));
      }
      expect(maxRelErr(applied[s]!.subarray(f1!.start), trained1[s]!.subarray(f1!.start))).toBeGreaterThan(0);
    });
    groups.forEach((g) => g.forEach((r) => r.dispose()));
  });
});
