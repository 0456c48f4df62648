import { describe, it, expect } from 'vitest';
import { rebuildStageWeights, seedInitialWeights, type RebuildContext } from './rebuild.js';
import { planRecovery } from './plan.js';
import { checkfreeAverage } from './average.js';
import { extractReplica, replicaHolders, replicaDue, replicasHeldBy, replicaOwner, weightBytes } from './replicas.js';
import { RecoveryError } from './errors.js';
import { resolveConfig } from '../model/config.js';
import { isBlockParam, stageParamSpecs } from '../model/params.js';
import type { NamedWeights } from '../model/stage.js';

// 4 stages of one block each; small enough to check every value.
const cfg = resolveConfig({ vocabSize: 16, dModel: 8, nHeads: 2, nLayers: 4, layersPerStage: 1, seqLen: 8, seed: 3 });
const S = 4;

/** Distinguishable "trained" weights: stage s's tensors are its init plus (s + 1). */
function trained(s: number): NamedWeights {
  const w = seedInitialWeights(cfg, s);
  for (const v of Object.values(w)) for (let i = 0; i < v.length; i++) v[i] += s + 1;
  return w;
}
const live = Array.from({ length: S }, (_, s) => trained(s));
const norms = { 0: { preClipNorm: 3, postClipNorm: 1 }, 1: { preClipNorm: 0.2, postClipNorm: 0.2 }, 2: { preClipNorm: 0.6, postClipNorm: 0.6 }, 3: { preClipNorm: 0.4, postClipNorm: 0.4 } };
const blockBytes = (w: NamedWeights) => weightBytes(Object.fromEntries(Object.entries(w).filter(([n]) => isBlockParam(n))));
const names = (s: number) => stageParamSpecs(cfg, s).map((p) => p.name);

describe('replica placement', () => {
  it('holders: stage 1 and S-2; S=3 both on 1; S=2 crossed; S=1 none', () => {
    expect(replicaHolders(1)).toEqual({ embed: null, head: null });
    expect(replicaHolders(2)).toEqual({ embed: 1, head: 0 });
    expect(replicaHolders(3)).toEqual({ embed: 1, head: 1 });
    expect(replicaHolders(4)).toEqual({ embed: 1, head: 2 });
    expect(replicaHolders(6)).toEqual({ embed: 1, head: 4 });
    expect(replicasHeldBy(1, 3)).toEqual(['embed', 'head']);
    expect(replicasHeldBy(0, 4)).toEqual([]);
    expect(replicaOwner('head', 4)).toBe(3);
    expect(() => replicaHolders(0)).toThrow(RangeError);
  });

  it('replicaDue: every k iterations, starting at 0', () => {
    expect([0, 1, 4, 5, 9, 10].map((t) => replicaDue(t, 5))).toEqual([true, false, false, true, false, true]);
    expect(replicaDue(7, 1)).toBe(true);
    expect(() => replicaDue(3, 0)).toThrow(RangeError);
  });

  it('extractReplica copies only embed.* or head.* and counts bytes', () => {
    const r = extractReplica(live[3]!, 'head');
    expect(Object.keys(r.weights).sort()).toEqual(['head.lm_head', 'head.norm.weight']);
    expect(r.bytes).toBe(4 * (8 * 16 + 8));
    expect(r.weights['head.lm_head']).toEqual(live[3]!['head.lm_head']);
    expect(r.weights['head.lm_head']).not.toBe(live[3]!['head.lm_head']);
    expect(extractReplica(live[0]!, 'embed').bytes).toBe(4 * 16 * 8);
    expect(() => extractReplica(live[1]!, 'embed')).toThrow(RecoveryError);
  });
});

describe('rebuildStageWeights', () => {
  const ctx: RebuildContext = {
    config: cfg,
    weights: live,
    norms,
    replicas: { 1: { embed: extractReplica(live[0]!, 'embed').weights }, 2: { head: extractReplica(live[3]!, 'head').weights } },
  };

  it('average: the weighted mean of the neighbours, all bytes of both neighbours counted', () => {
    const r = rebuildStageWeights(planRecovery('checkfree', 2, S), ctx);
    const want = checkfreeAverage(live[1]!, live[3]!, norms[1], norms[3]);
    expect(Object.keys(r.weights)).toEqual(names(2));
    for (const n of names(2)) expect(r.weights[n]).toEqual(want.weights[n]);
    expect(r.bytesIn).toBe(blockBytes(live[1]!) + blockBytes(live[3]!));
    expect(r.details).toMatchObject({ method: 'average', a: 0.4 + 1e-4, b: 0.2 + 1e-4, weighting: 'post-clip', fromSeed: [] });
  });

  it('average: the weighting is selectable and missing norms make it uniform', () => {
    const sq = rebuildStageWeights(planRecovery('checkfree', 1, S), { ...ctx, weighting: 'squared' });
    expect(sq.details.a).toBeCloseTo(0.36 + 1e-4, 12);
    expect(sq.details.b).toBeCloseTo(1 + 1e-4, 12);
    const un = rebuildStageWeights(planRecovery('checkfree', 1, S), { ...ctx, norms: {} });
    expect(un.details).toMatchObject({ a: 1, b: 1, weighting: 'uniform' });
    expect(un.details.notes.join()).toMatch(/uniform/);
  });

  it('copy (first stage): partner blocks + embedding replica held by stage 1', () => {
    const r = rebuildStageWeights(planRecovery('checkfree+', 0, S), ctx);
    expect(Object.keys(r.weights)).toEqual(names(0));
    for (const n of names(0).filter(isBlockParam)) {
      expect(r.weights[n]).toEqual(live[1]![n]);
      expect(r.weights[n]).not.toBe(live[1]![n]);
    }
    expect(r.weights['embed.weight']).toEqual(live[0]!['embed.weight']);
    expect(r.bytesIn).toBe(blockBytes(live[1]!) + 4 * 16 * 8);
    expect(r.details.sources).toEqual([
      { stage: 1, part: 'blocks', bytes: blockBytes(live[1]!) },
      { stage: 1, part: 'embed-replica', bytes: 4 * 16 * 8 },
    ]);
  });

  it('copy (last stage): partner blocks + head replica held by stage S-2', () => {
    const r = rebuildStageWeights(planRecovery('checkfree+', 3, S), ctx);
    expect(Object.keys(r.weights)).toEqual(names(3));
    expect(r.weights['blocks.0.attn.wq']).toEqual(live[2]!['blocks.0.attn.wq']);
    expect(r.weights['head.lm_head']).toEqual(live[3]!['head.lm_head']);
    expect(r.details.fromSeed).toEqual([]);
  });

  it('copy without a replica: the embedding comes from the seed, and the details say so', () => {
    const r = rebuildStageWeights(planRecovery('checkfree+', 0, S), { ...ctx, replicas: {} });
    expect(r.weights['embed.weight']).toEqual(seedInitialWeights(cfg, 0)['embed.weight']);
    expect(r.details.fromSeed).toEqual(['embed.weight']);
    expect(r.details.notes.join()).toMatch(/no embed replica on stage 1/);
    expect(r.bytesIn).toBe(blockBytes(live[1]!));
  });

  it('reinit: exactly the seed init, nothing transferred; a custom init function is used', () => {
    const r = rebuildStageWeights(planRecovery('checkfree', 0, S), ctx);
    expect(r.weights).toEqual(seedInitialWeights(cfg, 0));
    expect(r.bytesIn).toBe(0);
    expect(r.details.fromSeed).toEqual(names(0));
    const zeros = (s: number) => Object.fromEntries(Object.entries(seedInitialWeights(cfg, s)).map(([n, v]) => [n, new Float32Array(v.length)]));
    const z = rebuildStageWeights(planRecovery('none', 3, S), { ...ctx, initial: zeros });
    expect(z.weights['head.lm_head']!.every((x) => x === 0)).toBe(true);
  });

  it('2 stages: the lost last stage copies stage 0 and takes the head replica held by stage 0', () => {
    const c2 = resolveConfig({ ...cfg, layersPerStage: 2 });
    const w0 = seedInitialWeights(c2, 0);
    const w1 = seedInitialWeights(c2, 1);
    w1['head.lm_head']![0] = 42;
    const r = rebuildStageWeights(planRecovery('checkfree+', 1, 2), {
      config: c2,
      weights: { 0: w0 },
      replicas: { 0: { head: extractReplica(w1, 'head').weights } },
    });
    expect(r.weights['blocks.1.mlp.w_down']).toEqual(w0['blocks.1.mlp.w_down']);
    expect(r.weights['head.lm_head']![0]).toBe(42);
  });

  it('refuses missing sources, mismatched sources and coordinator-only methods', () => {
    expect(() => rebuildStageWeights(planRecovery('checkfree', 2, S), { ...ctx, weights: { 1: live[1]! } })).toThrow(
      /needs the weights of stage 3/,
    );
    const bad = { ...live[3]!, 'blocks.0.attn.wq': new Float32Array(3) };
    expect(() => rebuildStageWeights(planRecovery('checkfree', 2, S), { ...ctx, weights: { 1: live[1]!, 3: bad } })).toThrow(RecoveryError);
    const wrongShape = { ...live[1]!, 'blocks.0.attn.wq': new Float32Array(3) };
    expect(() => rebuildStageWeights(planRecovery('checkfree+', 0, S), { ...ctx, weights: { 1: wrongShape } })).toThrow(
      /rebuilt weights are invalid: parameter "blocks\.0\.attn\.wq" has 3 values/,
    );
    const nan = { ...live[1]!, 'blocks.0.attn.wq': live[1]!['blocks.0.attn.wq']!.map(() => NaN) };
    expect(() => rebuildStageWeights(planRecovery('checkfree+', 0, S), { ...ctx, weights: { 1: nan } })).toThrow(/non-finite/);
    const twoLayers = seedInitialWeights(resolveConfig({ ...cfg, layersPerStage: 2 }), 1);
    expect(() => rebuildStageWeights(planRecovery('checkfree+', 0, S), { ...ctx, weights: { 1: twoLayers } })).toThrow(
      /"blocks\.1\.attn_norm\.weight" is not a parameter/,
    );
    expect(() => rebuildStageWeights(planRecovery('checkpoint', 2, S), ctx)).toThrow(/carried out by the coordinator/);
  });
});
