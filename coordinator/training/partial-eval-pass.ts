/**
 * A validation pass through part of the model (SkipPipe, docs/skippipe.md#run-with-part-of-the-model):
 * the plain validation pass (pass-kind.ts evalPass), every microbatch along the block order of
 * an operator-chosen stage subset (shared/schedule/skip-paths.ts evalOrder: in order, stage 0 and
 * S-1 included) instead of the full path.
 */
import { hopsFromBlockOrder } from '../../shared/schedule/paths.js';
import { evalPass, type PassKind } from './pass-kind.js';

export function partialEvalPass(order: readonly number[]): PassKind {
  return { ...evalPass, path: (_iteration, _M, _mb, S) => hopsFromBlockOrder(order, S) };
}
