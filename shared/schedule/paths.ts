/**
 * Microbatch paths through the pipeline.
 *
 * A model is split into S pipeline stages. Stage 0 owns the token embedding,
 * stage S-1 owns the final norm + LM head + loss, and every stage owns a
 * contiguous run of transformer blocks. A microbatch's forward pass is a list
 * of *hops*; each hop runs some *segment* (embed / blocks / head) of one stage.
 *
 * Plain path (swap off, even microbatches, or S = 1): one hop per stage.
 *
 *   S = 1:  [0: embed+blocks+head]
 *   S = 4:  [0: embed+blocks] [1: blocks] [2: blocks] [3: blocks+head]
 *
 * Which microbatches swap is decided by a *swap counter* that runs across iterations,
 * `swapCounter(iteration, M, mb) = iteration * M + mb` (every path function takes it as its
 * first argument; with one iteration, or an even M, it is the microbatch's parity that counts).
 * A counter local to one iteration would never swap anything with M = 1, and with S = 3 and
 * M < 4 it would never swap the last pair, so CheckFree+ would copy a partner that never
 * learned the lost stage's position.
 *
 * CheckFree+ swap (swap on, odd counter): the block order of the first
 * two stages is swapped, and so is the block order of the last two stages, so
 * that each of stage 0 / stage S-1 learns to behave like its neighbour (which
 * is what lets a lost edge stage be re-initialised from its neighbour). The
 * embedding still runs on stage 0 and the head on stage S-1, so they become
 * hops of their own wherever they are no longer adjacent to that stage's blocks.
 *
 *   S >= 4, odd counter: block order 1,0,2,...,S-3,S-1,S-2
 *     S = 4: [0: embed] [1: blocks] [0: blocks] [3: blocks] [2: blocks] [3: head]
 *
 *   S = 2, odd counter: the first and last pair are the same pair, swapped once.
 *     block order 1,0
 *     [0: embed] [1: blocks] [0: blocks] [1: head]
 *
 *   S = 3, odd counter: the pairs (0,1) and (1,2) share stage 1, so they cannot
 *   both be swapped in one microbatch. Odd counters alternate:
 *     counter % 4 == 1: swap the first pair, block order 1,0,2
 *       [0: embed] [1: blocks] [0: blocks] [2: blocks+head]
 *     counter % 4 == 3: swap the last pair, block order 0,2,1
 *       [0: embed+blocks] [2: blocks] [1: blocks] [2: head]
 *
 * Adjacent hops on the same stage are always merged into one hop.
 * The backward path is the forward path reversed.
 */

/** Which parts of a stage a hop runs. */
export interface Segment {
  embed: boolean;
  blocks: boolean;
  head: boolean;
}

/** One step of a microbatch's path: run `segment` on `stage`. */
export interface Hop {
  stage: number;
  segment: Segment;
}

/** Pass direction: forward (activations) or backward (gradients). */
export type Direction = 'F' | 'B';

/** A hop together with its position in a microbatch's task sequence. */
export interface HopRef {
  dir: Direction;
  /** Index into `forwardPath` (dir 'F') or `backwardPath` (dir 'B'). */
  hopIndex: number;
  hop: Hop;
}

function assertStageCount(nStages: number): void {
  if (!Number.isInteger(nStages) || nStages < 1) {
    throw new RangeError(`nStages must be an integer >= 1, got ${nStages}`);
  }
}

function assertCounter(counter: number): void {
  if (!Number.isSafeInteger(counter) || counter < 0) {
    throw new RangeError(`swap counter must be an integer >= 0, got ${counter}`);
  }
}

/**
 * The swap counter of microbatch `mb` of iteration `iteration` with `microbatches` per
 * iteration: what every path function below takes, in the swarm and in the local trainer alike.
 */
export function swapCounter(iteration: number, microbatches: number, mb: number): number {
  if (!Number.isInteger(microbatches) || microbatches < 1) throw new RangeError(`microbatches must be an integer >= 1, got ${microbatches}`);
  if (!Number.isInteger(iteration) || iteration < 0) throw new RangeError(`iteration must be an integer >= 0, got ${iteration}`);
  if (!Number.isInteger(mb) || mb < 0 || mb >= microbatches) throw new RangeError(`microbatch ${mb} out of range 0..${microbatches - 1}`);
  return iteration * microbatches + mb;
}

function swapAt(order: number[], i: number): void {
  const tmp = order[i];
  order[i] = order[i + 1];
  order[i + 1] = tmp;
}

/**
 * The order in which stages run their transformer blocks for swap counter `counter`
 * (`swapCounter`). Identity unless `swap` is on, the counter is odd and there are at least 2
 * stages (see the file comment for the exact rules).
 */
export function blockOrder(counter: number, nStages: number, swap: boolean): number[] {
  assertCounter(counter);
  assertStageCount(nStages);
  const order = Array.from({ length: nStages }, (_, i) => i);
  if (!swap || nStages < 2 || counter % 2 === 0) return order;

  if (nStages === 3) {
    swapAt(order, counter % 4 === 1 ? 0 : 1);
    return order;
  }
  swapAt(order, 0);
  if (nStages >= 4) swapAt(order, nStages - 2);
  return order;
}

/**
 * The hops of the forward pass of the microbatch with swap counter `counter`:
 * the embedding on stage 0, then every stage's blocks in `blockOrder`, then the
 * head on stage S-1, with adjacent hops on the same stage merged.
 */
export function forwardPath(counter: number, nStages: number, swap: boolean): Hop[] {
  return hopsFromBlockOrder(blockOrder(counter, nStages, swap), nStages);
}

/**
 * The forward hops of any block order: the embedding on stage 0, then the blocks of the stages in
 * `order` (a skip path may leave stages out: shared/schedule/skip-paths.ts), then the head on stage
 * S-1, with adjacent hops on the same stage merged. `order` is not checked here.
 */
export function hopsFromBlockOrder(order: readonly number[], nStages: number): Hop[] {
  assertStageCount(nStages);
  const pieces: Hop[] = [
    { stage: 0, segment: { embed: true, blocks: false, head: false } },
    ...order.map((stage) => ({
      stage,
      segment: { embed: false, blocks: true, head: false },
    })),
    { stage: nStages - 1, segment: { embed: false, blocks: false, head: true } },
  ];

  const merged: Hop[] = [];
  for (const piece of pieces) {
    const last = merged[merged.length - 1];
    if (last && last.stage === piece.stage) {
      last.segment = {
        embed: last.segment.embed || piece.segment.embed,
        blocks: last.segment.blocks || piece.segment.blocks,
        head: last.segment.head || piece.segment.head,
      };
    } else {
      merged.push(piece);
    }
  }
  return merged;
}

/** The hops of the backward pass: exactly `forwardPath` in reverse order. */
export function backwardPath(counter: number, nStages: number, swap: boolean): Hop[] {
  return forwardPath(counter, nStages, swap).reverse();
}

/**
 * The hop that follows hop `hopIndex` of direction `dir` for swap counter `counter`:
 * the next forward hop, the first backward hop after the last forward hop,
 * or `null` once the last backward hop is done. Useful for routing frames.
 */
export function nextHop(
  counter: number,
  nStages: number,
  swap: boolean,
  dir: Direction,
  hopIndex: number,
): HopRef | null {
  const path = dir === 'F' ? forwardPath(counter, nStages, swap) : backwardPath(counter, nStages, swap);
  if (!Number.isInteger(hopIndex) || hopIndex < 0 || hopIndex >= path.length) {
    throw new RangeError(`hopIndex ${hopIndex} out of range for a ${path.length}-hop path`);
  }
  if (hopIndex + 1 < path.length) {
    return { dir, hopIndex: hopIndex + 1, hop: path[hopIndex + 1] };
  }
  if (dir === 'F') {
    return { dir: 'B', hopIndex: 0, hop: backwardPath(counter, nStages, swap)[0] };
  }
  return null;
}
