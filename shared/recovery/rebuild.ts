/**
 * Executes a RecoveryPlan: assembles the complete weights of the lost stage from what the plan
 * names (neighbour weights, their gradient norms, a replica) and fills anything no source covers
 * with the deterministic seed-initial values. Pure JavaScript on NamedWeights, so the coordinator
 * can run it on Float32Arrays fetched from tabs and send the result to the replacement tab.
 *
 *   average  blocks = checkfreeAverage(prev, next); the lost stage owns no embedding/head.
 *   copy     blocks = the partner's blocks; embedding/head = the partner's replica, or the seed
 *            init when no replica exists yet (reported in details.fromSeed).
 *   reinit   everything from the seed.
 *
 * checkpoint and redundant plans are carried out by the coordinator and are refused here.
 * The result is validated against the lost stage's parameter specs before it is returned.
 */
import { resolveConfig, type ModelConfig } from '../model/config.js';
import { initialValue, isBlockParam, stageParamSpecs } from '../model/params.js';
import { validateWeights, WeightsError, type GradNorms, type NamedWeights } from '../model/stage.js';
import { checkfreeAverage, type AverageWeighting } from './average.js';
import type { RecoveryPlan } from './plan.js';
import { weightBytes, type StageReplicas } from './replicas.js';
import { RecoveryError } from './errors.js';

/** What a rebuild may draw on. Only the stages the plan names are read. */
export interface RebuildContext {
  /** Model config (resolved or not) of the pipeline. */
  config: ModelConfig;
  /** Current weights of surviving stages, by stage index (an array works). */
  weights: Partial<Record<number, NamedWeights>>;
  /** Each stage's last gradient norms (null/absent: unknown, the average becomes uniform). */
  norms?: Partial<Record<number, GradNorms | null>>;
  /** The replicas each stage's tab holds, by holder stage index. */
  replicas?: Partial<Record<number, StageReplicas>>;
  /** Seed-initial weights of a stage; defaults to `seedInitialWeights(config, stage)`. */
  initial?: (stage: number) => NamedWeights;
  /** Neighbour weighting for `average` (default post-clip). */
  weighting?: AverageWeighting;
}

/** One source a rebuild used. */
export interface RebuildSource {
  stage: number;
  part: 'blocks' | 'embed-replica' | 'head-replica';
  bytes: number;
}

export interface RebuildDetails {
  method: RecoveryPlan['method'];
  sources: RebuildSource[];
  /** Parameters that no source covered and came from the seed init. */
  fromSeed: string[];
  /** Averaging weights (next, prev) and the weighting applied; null unless method is average. */
  a: number | null;
  b: number | null;
  weighting: AverageWeighting | null;
  /** Human-readable remarks (e.g. a missing replica). */
  notes: string[];
}

export interface RebuildResult {
  /** Every parameter of the lost stage, in spec order. */
  weights: NamedWeights;
  /** Bytes of source tensors used (what had to travel to rebuild the stage). */
  bytesIn: number;
  details: RebuildDetails;
}

/** The deterministic initial weights of `stage` (what a fresh Stage starts from). */
export function seedInitialWeights(config: ModelConfig, stage: number): NamedWeights {
  const c = resolveConfig(config);
  const out: NamedWeights = {};
  for (const spec of stageParamSpecs(c, stage)) out[spec.name] = initialValue(c, spec);
  return out;
}

function blocksOf(w: NamedWeights): NamedWeights {
  const out: NamedWeights = {};
  for (const [n, v] of Object.entries(w)) if (isBlockParam(n)) out[n] = v;
  return out;
}

/** Builds the complete weights of `plan.lost` as the plan says. Throws RecoveryError on failure. */
export function rebuildStageWeights(plan: RecoveryPlan, ctx: RebuildContext): RebuildResult {
  if (plan.method === 'checkpoint' || plan.method === 'redundant') {
    throw new RecoveryError(`stage ${plan.lost}: ${plan.method} recovery is carried out by the coordinator, not rebuilt from neighbours`);
  }
  const c = resolveConfig(ctx.config);
  const specs = stageParamSpecs(c, plan.lost);
  const details: RebuildDetails = { method: plan.method, sources: [], fromSeed: [], a: null, b: null, weighting: null, notes: [] };
  const got: NamedWeights = {};
  let bytesIn = 0;

  const need = (stage: number): NamedWeights => {
    const w = ctx.weights[stage];
    if (!w) throw new RecoveryError(`stage ${plan.lost}: ${plan.method} needs the weights of stage ${stage}, which were not given`);
    return w;
  };
  const use = (stage: number, part: RebuildSource['part'], w: NamedWeights) => {
    const bytes = weightBytes(w);
    details.sources.push({ stage, part, bytes });
    bytesIn += bytes;
  };

  if (plan.method === 'average') {
    const [p, n] = plan.blockSources as [number, number];
    const prev = blocksOf(need(p));
    const next = blocksOf(need(n));
    const r = checkfreeAverage(prev, next, ctx.norms?.[p] ?? null, ctx.norms?.[n] ?? null, ctx.weighting ?? 'post-clip');
    Object.assign(got, r.weights);
    use(p, 'blocks', prev);
    use(n, 'blocks', next);
    details.a = r.a;
    details.b = r.b;
    details.weighting = r.weighting;
    if (r.weighting !== (ctx.weighting ?? 'post-clip')) details.notes.push('gradient norms missing: uniform average');
    if (r.wholeStage) details.notes.push('a neighbour reported no block norm: weighed by its whole-stage norm');
  } else if (plan.method === 'copy') {
    const src = plan.blockSources[0]!;
    const blocks = blocksOf(need(src));
    for (const [name, v] of Object.entries(blocks)) got[name] = v.slice();
    use(src, 'blocks', blocks);
    if (plan.replicaPart && plan.replicaSource !== null) {
      const rep = ctx.replicas?.[plan.replicaSource]?.[plan.replicaPart];
      if (rep) {
        for (const [name, v] of Object.entries(rep)) got[name] = v.slice();
        use(plan.replicaSource, plan.replicaPart === 'embed' ? 'embed-replica' : 'head-replica', rep);
      } else {
        details.notes.push(`no ${plan.replicaPart} replica on stage ${plan.replicaSource}: ${plan.replicaPart} re-initialised from seed`);
      }
    }
  }

  // A neighbour must cover every block of the lost stage: a gap means mismatched layouts.
  if (plan.method !== 'reinit') {
    const missing = specs.filter((s) => isBlockParam(s.name) && !(s.name in got)).map((s) => s.name);
    if (missing.length) {
      throw new RecoveryError(`stage ${plan.lost}: the sources lack block parameters ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''}`);
    }
  }

  let initial: NamedWeights | null = null;
  const weights: NamedWeights = {};
  for (const s of specs) {
    let v = got[s.name];
    if (!v) {
      initial ??= ctx.initial ? ctx.initial(plan.lost) : seedInitialWeights(c, plan.lost);
      v = initial[s.name];
      if (!v) throw new RecoveryError(`stage ${plan.lost}: the seed-initial weights lack "${s.name}"`);
      details.fromSeed.push(s.name);
    }
    weights[s.name] = v;
  }
  for (const name of Object.keys(got)) {
    if (!(name in weights)) throw new RecoveryError(`stage ${plan.lost}: source tensor "${name}" is not a parameter of this stage`);
  }
  try {
    validateWeights(specs, weights);
  } catch (e) {
    if (e instanceof WeightsError) throw new RecoveryError(`stage ${plan.lost}: rebuilt weights are invalid: ${e.message}`);
    throw e;
  }
  return { weights, bytesIn, details };
}
