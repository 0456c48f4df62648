/**
 * CheckFree+ replicas of the embedding and the LM head (docs/research.md, "CheckFree+").
 *
 * The first stage owns the token embedding and the last stage owns the final norm + LM head.
 * CheckFree+ rebuilds a lost edge stage's blocks by copying its swap partner, but the partner has
 * no embedding/head of its own, so the partner also keeps a *replica* of them, refreshed every
 * `every` iterations (our design; the reference code never loses these parts):
 *
 *   S >= 4   embedding replica on stage 1,   head replica on stage S-2
 *   S = 3    both on stage 1 (the middle stage is the partner of both edges)
 *   S = 2    embedding replica on stage 1,   head replica on stage 0 (each holds the other's part)
 *   S = 1    none (there is no other stage)
 *
 * A replica is as old as its last refresh: a restored embedding/head loses the updates since then
 * (at most `every - 1` iterations), which is the price of not shipping them every iteration.
 * A replica lives on its holder's tab, so it is lost with that tab; it is re-taken from the live
 * owner once the holder is rebuilt.
 */
import type { NamedWeights } from '../model/stage.js';
import { RecoveryError } from './errors.js';

export type ReplicaPart = 'embed' | 'head';

/** The replicas one stage's tab holds. */
export interface StageReplicas {
  embed?: NamedWeights;
  head?: NamedWeights;
}

/** Which stage holds each replica (null when there is none). */
export interface ReplicaHolders {
  embed: number | null;
  head: number | null;
}

function checkStages(nStages: number): void {
  if (!Number.isInteger(nStages) || nStages < 1) throw new RangeError(`nStages must be an integer >= 1, got ${nStages}`);
}

/** The stage holding the embedding replica and the one holding the head replica. */
export function replicaHolders(nStages: number): ReplicaHolders {
  checkStages(nStages);
  if (nStages === 1) return { embed: null, head: null };
  if (nStages === 2) return { embed: 1, head: 0 };
  return { embed: 1, head: nStages - 2 };
}

/** The stage that owns the live `part`: 0 for the embedding, S-1 for the head. */
export function replicaOwner(part: ReplicaPart, nStages: number): number {
  checkStages(nStages);
  return part === 'embed' ? 0 : nStages - 1;
}

/** The parts whose replicas stage `stage` holds (empty for most stages). */
export function replicasHeldBy(stage: number, nStages: number): ReplicaPart[] {
  const h = replicaHolders(nStages);
  return (['embed', 'head'] as const).filter((p) => h[p] === stage);
}

/**
 * Whether replicas are refreshed after `iteration` completed iterations: every `every`
 * iterations, starting with iteration 0 (the initial weights), so a replica always exists.
 */
export function replicaDue(iteration: number, every: number): boolean {
  if (!Number.isInteger(every) || every < 1) throw new RangeError(`replica interval must be an integer >= 1, got ${every}`);
  if (!Number.isInteger(iteration) || iteration < 0) throw new RangeError(`iteration must be an integer >= 0, got ${iteration}`);
  return iteration % every === 0;
}

/** Whether `name` belongs to `part` (embed.* or head.*). */
export function isReplicaParam(name: string, part: ReplicaPart): boolean {
  return name.startsWith(`${part}.`);
}

/** Total bytes of a set of named tensors. */
export function weightBytes(w: NamedWeights): number {
  let n = 0;
  for (const v of Object.values(w)) n += v.byteLength;
  return n;
}

/**
 * Copies the `part` tensors (embed.* or head.*) out of a stage's weights, as a snapshot that
 * later changes to `weights` cannot reach. Throws a RecoveryError when the stage has none.
 */
export function extractReplica(weights: NamedWeights, part: ReplicaPart): { weights: NamedWeights; bytes: number } {
  const out: NamedWeights = {};
  for (const [name, v] of Object.entries(weights)) if (isReplicaParam(name, part)) out[name] = v.slice();
  if (Object.keys(out).length === 0) throw new RecoveryError(`these weights have no ${part}.* tensors to replicate`);
  return { weights: out, bytes: weightBytes(out) };
}
