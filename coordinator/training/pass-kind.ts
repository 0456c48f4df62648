/**
 * What differs between a training pass and a validation pass, as two objects behind one
 * interface (the pipeline pass itself is the same code for both):
 *   train  forward (`F`) and backward (`B`) tasks along CheckFree+'s paths (or SkipPipe's); at most a window of
 *          microbatches in flight; the hop inputs kept while a stage has siblings, so a lost
 *          replica's hops run again; relayed frames screened; a loss starts the backward path.
 *   eval   forward-only (`E`) tasks along the plain path, everything at once, nothing kept (a
 *          replica lost mid-validation abandons it, to be retried later); a loss ends the microbatch.
 */
import { forwardPath, hopsFromBlockOrder, swapCounter, type Hop } from '../../shared/schedule/paths.js';
import type { TaskMeta } from '../../shared/protocol/events.js';
import type { Volunteer } from '../tabs/registry.js';
import { IterationAbandoned } from './iteration-abandoned.js';

/** What a kind of pass may ask of the pass it drives. */
export interface PassControl {
  /** The head reported microbatch `mb`'s loss: its backward path starts. */
  startBackward(mb: number): void;
  /** Microbatch `mb` is done. */
  finishMicrobatch(): void;
  /** Runs again on siblings the hops a lost replica held; returns how many. */
  rerunHopsOf(v: Volunteer, stage: number): number;
  /** Whether a task of this pass is out with `v`. */
  holds(v: Volunteer): boolean;
}

export interface PassKind {
  readonly name: 'train' | 'eval';
  /** The direction tag of this pass's forward tasks. */
  readonly forwardDir: 'F' | 'E';
  /** Whether the coordinator keeps hop inputs for re-runs and screens relayed frames. */
  readonly keepsInputs: boolean;
  /** Whether a result in direction `dir` belongs to this kind of pass. */
  accepts(dir: TaskMeta['dir']): boolean;
  /** The forward path of microbatch `mb` of `M` in `iteration` through `nStages` stages. */
  path(iteration: number, M: number, mb: number, nStages: number): Hop[];
  /** Microbatches in flight at most. */
  window(M: number): number;
  /** The head reported microbatch `mb`'s loss. */
  afterLoss(pass: PassControl, mb: number): void;
  /** A replica (not its stage's last) was lost mid-pass; returns the hops run again. */
  replicaLost(pass: PassControl, v: Volunteer, stage: number): number;
}

/**
 * A training pass: `swap` (CheckFree+'s order), `window` (the in-flight window for M microbatches),
 * `order` (SkipPipe: microbatch `mb`'s block order in `iteration` when the iteration follows skip
 * paths, else null: the full path; skip-planner.ts).
 */
export function trainPass(opts: { swap: boolean; window: (M: number) => number; order?: (iteration: number, mb: number) => readonly number[] | null }): PassKind {
  return {
    name: 'train',
    forwardDir: 'F',
    keepsInputs: true,
    accepts: (dir) => dir !== 'E',
    path: (iteration, M, mb, S) => {
      const order = opts.order?.(iteration, mb);
      return order ? hopsFromBlockOrder(order, S) : forwardPath(swapCounter(iteration, M, mb), S, opts.swap);
    },
    window: opts.window,
    afterLoss: (pass, mb) => pass.startBackward(mb),
    replicaLost: (pass, v, stage) => pass.rerunHopsOf(v, stage),
  };
}

/** A validation pass: no stash, no update, the plain path. */
export const evalPass: PassKind = {
  name: 'eval',
  forwardDir: 'E',
  keepsInputs: false,
  accepts: (dir) => dir === 'E',
  path: (iteration, M, mb, S) => forwardPath(swapCounter(iteration, M, mb), S, false),
  window: (M) => M,
  afterLoss: (pass) => pass.finishMicrobatch(),
  replicaLost: (pass, v, stage) => {
    if (pass.holds(v)) throw new IterationAbandoned(stage, [], `a replica of stage ${stage} was lost during validation`);
    return 0;
  },
};
