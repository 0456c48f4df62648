/**
 * The time model the skip schedulers decide over and bench:skip simulates: one iteration of
 * microbatches, each following its block order's hops (paths.ts hopsFromBlockOrder) forward and
 * then back, on stages whose task times and links were measured.
 *
 * Each stage (its replica group, as the coordinator measures it: tab-speed.ts) is one server that
 * runs one task at a time, queued backward tasks first (as tabs do), then the task that became
 * ready first, then the lowest microbatch. A hop that runs blocks takes the stage's forward (or
 * backward) time; an embedding-only or head-only hop takes EDGE_HOP_FRACTION of it (the reference
 * counts its origin's own work at a quarter). Moving a tensor from stage a to stage b takes
 * `linkMs[a][b]` (half a measured round trip); consecutive hops on one stage take no link.
 * Microbatches enter in index order, at most `maxInFlight` at once (default: all).
 *
 * Two forward passes that want one stage at once *collide*: the later one waits. That wait is
 * what the collision-aware scheduler (skip-scheduler.ts) routes around.
 */
import { hopsFromBlockOrder, type Hop } from './paths.js';

export interface StageCosts {
  /** Per stage: ms of one forward task through the stage's blocks. */
  forwardMs: readonly number[];
  /** Per stage: ms of one backward task. */
  backwardMs: readonly number[];
  /** linkMs[a][b]: ms to move an activation (or its gradient) from stage a to stage b. */
  linkMs: readonly (readonly number[])[];
}

export const EDGE_HOP_FRACTION = 0.25;

/** One task as the simulation ran it. */
export interface TimedTask {
  mb: number;
  dir: 'F' | 'B';
  stage: number;
  start: number;
  end: number;
}

export interface IterationTiming {
  /** When the last backward finished (ms from the iteration's start). */
  makespanMs: number;
  /** Per microbatch: when its last backward finished. */
  finishMs: number[];
  /** Per stage: ms spent running tasks. */
  busyMs: number[];
  /** Per stage: ms forward tasks that were ready waited for the stage (collisions). */
  waitMs: number[];
  tasks: TimedTask[];
}

export class CostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CostError';
  }
}

/** Throws a CostError unless `costs` has finite non-negative numbers for `nStages` stages. */
export function checkCosts(costs: StageCosts, nStages: number): void {
  const ok = (x: unknown) => typeof x === 'number' && Number.isFinite(x) && x >= 0;
  if (costs.forwardMs.length !== nStages || !costs.forwardMs.every(ok)) throw new CostError(`forwardMs must be ${nStages} finite numbers >= 0`);
  if (costs.backwardMs.length !== nStages || !costs.backwardMs.every(ok)) throw new CostError(`backwardMs must be ${nStages} finite numbers >= 0`);
  if (costs.linkMs.length !== nStages || !costs.linkMs.every((r) => r.length === nStages && r.every(ok))) throw new CostError(`linkMs must be ${nStages}x${nStages} finite numbers >= 0`);
}

/** ms of one task of `hop` in direction `dir`. */
export function hopMs(hop: Hop, dir: 'F' | 'B', costs: StageCosts): number {
  const full = (dir === 'F' ? costs.forwardMs : costs.backwardMs)[hop.stage]!;
  return hop.segment.blocks ? full : full * EDGE_HOP_FRACTION;
}

interface Chain {
  tasks: { dir: 'F' | 'B'; hop: Hop }[];
  next: number;
  ready: number;
}

/** Simulates one iteration of `orders` (one block order per microbatch) under `costs`. */
export function simulateIteration(orders: readonly (readonly number[])[], nStages: number, costs: StageCosts, opts: { maxInFlight?: number } = {}): IterationTiming {
  checkCosts(costs, nStages);
  const M = orders.length;
  const window = opts.maxInFlight ?? M;
  const chains: Chain[] = orders.map((o) => {
    const fwd = hopsFromBlockOrder(o, nStages);
    return { tasks: [...fwd.map((hop) => ({ dir: 'F' as const, hop })), ...[...fwd].reverse().map((hop) => ({ dir: 'B' as const, hop }))], next: 0, ready: 0 };
  });
  const freeAt = new Array<number>(nStages).fill(0);
  const busyMs = new Array<number>(nStages).fill(0);
  const waitMs = new Array<number>(nStages).fill(0);
  const finishMs = new Array<number>(M).fill(0);
  const tasks: TimedTask[] = [];
  let injected = Math.min(window, M);
  let inFlight = injected;
  let done = 0;
  while (done < M) {
    let best: { stage: number; mb: number; start: number } | null = null;
    for (let s = 0; s < nStages; s++) {
      let earliest = Infinity;
      for (let mb = 0; mb < injected; mb++) {
        const c = chains[mb]!;
        if (c.next < c.tasks.length && c.tasks[c.next]!.hop.stage === s) earliest = Math.min(earliest, c.ready);
      }
      if (earliest === Infinity) continue;
      const start = Math.max(freeAt[s]!, earliest);
      let pick = -1;
      for (let mb = 0; mb < injected; mb++) {
        const c = chains[mb]!;
        if (c.next >= c.tasks.length || c.tasks[c.next]!.hop.stage !== s || c.ready > start) continue;
        if (pick < 0) {
          pick = mb;
          continue;
        }
        const p = chains[pick]!;
        const cb = c.tasks[c.next]!.dir === 'B';
        const pb = p.tasks[p.next]!.dir === 'B';
        if ((cb && !pb) || (cb === pb && c.ready < p.ready)) pick = mb;
      }
      if (!best || start < best.start) best = { stage: s, mb: pick, start };
    }
    if (!best) throw new Error('simulateIteration: no task ready while microbatches remain');
    const c = chains[best.mb]!;
    const task = c.tasks[c.next]!;
    const dur = hopMs(task.hop, task.dir, costs);
    const end = best.start + dur;
    if (task.dir === 'F') waitMs[best.stage]! += best.start - c.ready;
    busyMs[best.stage]! += dur;
    freeAt[best.stage] = end;
    tasks.push({ mb: best.mb, dir: task.dir, stage: best.stage, start: best.start, end });
    c.next++;
    if (c.next < c.tasks.length) {
      const to = c.tasks[c.next]!.hop.stage;
      c.ready = end + (to === best.stage ? 0 : costs.linkMs[best.stage]![to]!);
    } else {
      finishMs[best.mb] = end;
      done++;
      inFlight--;
      while (inFlight < window && injected < M) {
        chains[injected]!.ready = end;
        injected++;
        inFlight++;
      }
    }
  }
  return { makespanMs: Math.max(0, ...finishMs), finishMs, busyMs, waitMs, tasks };
}
