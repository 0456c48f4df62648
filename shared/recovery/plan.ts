/**
 * Which recovery a lost stage gets, and from which stages: a pure decision from the strategy,
 * the lost stage and the stage count. rebuild.ts executes the plan on weights.
 *
 * Rules (stage 0 owns the embedding, stage S-1 the head; "edge" = first or last stage):
 *
 *   checkfree    intermediate stage i -> average of stages i-1 and i+1 (weighted by their norms);
 *                an edge stage has only one neighbour: the paper's CheckFree cannot rebuild it
 *                -> re-init from the seed (fallback; `edge: 'reinit'`, the default), or, as the
 *                reference's plain script does, copy the neighbour's blocks (`edge: 'copy'`;
 *                embedding/head from the neighbour's replica when one is kept, else the seed).
 *   checkfree+   the swapped pairs (stages 0/1 and S-2/S-1) are rebuilt by a copy of the
 *                partner, which learned the lost stage's position on the swapped microbatches:
 *                stage 0   -> copy the blocks of stage 1, embedding from the replica held by 1;
 *                stage 1   -> copy the blocks of stage 0 (S >= 4);
 *                stage S-2 -> copy the blocks of stage S-1 (S >= 4);
 *                stage S-1 -> copy the blocks of stage S-2, head from the replica held by S-2;
 *                any other stage -> average of i-1 and i+1, as checkfree.
 *   none         re-init from the seed (no fallback: that *is* the strategy).
 *   checkpoint,  executed by the coordinator (restore from storage / from the redundant copy);
 *   redundant    the plan only names the method and lists no sources.
 *
 * Small pipelines, where the swapped pairs overlap (see shared/schedule/paths.ts):
 *
 *   S = 3   stage 1 is intermediate and the partner of both edges; it has no single partner, so
 *           it is averaged from 0 and 2:
 *           lost 0 -> copy stage 1's blocks + embedding replica held by 1;
 *           lost 2 -> copy stage 1's blocks + head replica held by 1.
 *           Plain checkfree can only recover stage 1.
 *   S = 2   each stage is both the first and the last of the single swapped pair, and there is no
 *           intermediate stage (plain checkfree recovers nothing):
 *           lost 0 -> copy stage 1's blocks + embedding replica held by 1;
 *           lost 1 -> copy stage 0's blocks + head replica held by 0.
 *   S = 1   nothing to recover from: every checkfree variant re-inits (fallback).
 */
import type { RecoveryStrategy } from '../run-settings.js';
import { RECOVERY_STRATEGIES } from '../run-settings.js';
import { replicaHolders, type ReplicaPart } from './replicas.js';
import { RecoveryError } from './errors.js';

export type RecoveryMethod = 'average' | 'copy' | 'reinit' | 'checkpoint' | 'stage-restore' | 'cpsr' | 'redundant';

/** What plain checkfree does with a lost first or last stage (`--edge`). */
export const EDGE_POLICIES = ['reinit', 'copy'] as const;
export type EdgePolicy = (typeof EDGE_POLICIES)[number];

export interface PlanOptions {
  /** Plain checkfree at the first/last stage: re-init from the seed (the paper) or copy the neighbour. */
  edge?: EdgePolicy;
}

export interface RecoveryPlan {
  strategy: RecoveryStrategy;
  /** The lost stage. */
  lost: number;
  nStages: number;
  method: RecoveryMethod;
  /** Stages whose block weights are needed: [prev, next] for average, [partner] for copy. */
  blockSources: number[];
  /** The stage whose tab holds the lost stage's embedding/head replica (copy only). */
  replicaSource: number | null;
  /** Which replica `replicaSource` supplies (null when none is needed). */
  replicaPart: ReplicaPart | null;
  /** True when the strategy could not apply and the stage is re-initialised from the seed. */
  fallback: boolean;
  /** One line for logs and the event feed. */
  description: string;
}

/** The lost stage, before a planner decides how it comes back. */
interface Lost {
  strategy: RecoveryStrategy;
  lost: number;
  nStages: number;
}

/** How the neighbour-rebuilding strategies (checkfree, checkfree+) treat the stages averaging cannot reach. */
interface NeighbourRule {
  /** Stages 1 and S-2 (S >= 4) are copied from their swap partner instead of averaged (CheckFree+). */
  swapPartners: boolean;
  /** A lost first/last stage: copy the neighbour (+ embedding/head replica), or re-init from the seed. */
  edges: EdgePolicy;
}

/** One strategy's decision: a pure function of the lost stage and the stage count. */
type Planner = (l: Lost, edge: EdgePolicy) => RecoveryPlan;

const PLANNERS: Record<RecoveryStrategy, Planner> = {
  'checkfree+': (l) => fromNeighbours(l, { swapPartners: true, edges: 'copy' }),
  checkfree: (l, edge) => fromNeighbours(l, { swapPartners: false, edges: edge }),
  checkpoint: (l) => restored(l, 'checkpoint', 'restore from the last checkpoint'),
  cpsr: (l) => restored(l, 'cpsr', 'restore the lost stage from its last checkpoint and predict it forward (CPSR)'),
  'stage-restore': (l) => restored(l, 'stage-restore', 'restore the lost stage from its last checkpoint'),
  redundant: (l) => restored(l, 'redundant', 'restore from the redundant copy'),
  none: (l) => reinit(l, false, 'no recovery strategy'),
};

/** Decides how stage `lost` of an `nStages`-stage pipeline is recovered under `strategy`. */
export function planRecovery(strategy: RecoveryStrategy, lost: number, nStages: number, opts: PlanOptions = {}): RecoveryPlan {
  const edge = opts.edge ?? 'reinit';
  if (!EDGE_POLICIES.includes(edge)) throw new RecoveryError(`unknown edge policy "${String(edge)}"; choose one of: ${EDGE_POLICIES.join(', ')}`);
  if (!Object.hasOwn(PLANNERS, strategy)) {
    throw new RecoveryError(`unknown recovery strategy "${String(strategy)}"; choose one of: ${RECOVERY_STRATEGIES.join(', ')}`);
  }
  if (!Number.isInteger(nStages) || nStages < 1) throw new RangeError(`nStages must be an integer >= 1, got ${nStages}`);
  if (!Number.isInteger(lost) || lost < 0 || lost >= nStages) {
    throw new RangeError(`lost stage ${lost} out of range 0..${nStages - 1}`);
  }
  return PLANNERS[strategy]({ strategy, lost, nStages }, edge);
}

function base(l: Lost): Omit<RecoveryPlan, 'method' | 'description'> {
  return { ...l, blockSources: [], replicaSource: null, replicaPart: null, fallback: false };
}

function reinit(l: Lost, fallback: boolean, why: string): RecoveryPlan {
  return { ...base(l), method: 'reinit', fallback, description: `stage ${l.lost}: re-init from seed (${why})` };
}

/** Checkpoint and redundant are restores the coordinator carries out: the plan lists no sources. */
function restored(l: Lost, method: 'checkpoint' | 'stage-restore' | 'cpsr' | 'redundant', what: string): RecoveryPlan {
  return { ...base(l), method, description: `stage ${l.lost}: ${what}` };
}

/** CheckFree and CheckFree+: rebuild the lost stage from the weights of its neighbours. */
function fromNeighbours(l: Lost, rule: NeighbourRule): RecoveryPlan {
  const { lost, nStages } = l;
  if (nStages === 1) return reinit(l, true, `${l.strategy} needs at least 2 stages`);
  const first = lost === 0;
  const last = lost === nStages - 1;
  // checkfree+ with S >= 4: stage 1 and stage S-2 are members of a swapped pair, copied from the
  // partner (the edge stage, whose own embedding/head the copy does not need).
  if (rule.swapPartners && nStages >= 4 && (lost === 1 || lost === nStages - 2)) {
    const partner = lost === 1 ? 0 : nStages - 1;
    return { ...base(l), method: 'copy', blockSources: [partner], description: `stage ${lost}: copy blocks of stage ${partner} (its swap partner)` };
  }
  if (!first && !last) {
    const prev = lost - 1;
    const next = lost + 1;
    return { ...base(l), method: 'average', blockSources: [prev, next], description: `stage ${lost}: weighted average of stages ${prev} and ${next}` };
  }
  if (rule.edges === 'reinit') {
    return reinit(l, true, `${l.strategy} cannot recover the ${first ? 'first' : 'last'} stage: it has one neighbour`);
  }
  // Copy the neighbour (under checkfree+ it is the swap partner) and restore the embedding/head
  // from the replica the neighbour's tab holds. With S = 2 the lost stage is both first and last;
  // it owns exactly one of the two parts.
  const part: ReplicaPart = first ? 'embed' : 'head';
  const partner = first ? 1 : nStages - 2;
  const holder = replicaHolders(nStages)[part]!;
  return {
    ...base(l),
    method: 'copy',
    blockSources: [partner],
    replicaSource: holder,
    replicaPart: part,
    description: `stage ${lost}: copy blocks of stage ${partner}, ${part === 'embed' ? 'embedding' : 'head'} from the replica on stage ${holder}`,
  };
}
