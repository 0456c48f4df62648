/**
 * A discrete-time pipeline schedule simulator.
 *
 * Each stage is a worker that runs one task per time unit. A task is one hop
 * of one microbatch in one direction; a microbatch's tasks form a chain
 * (forward hops in order, then backward hops in order), so a task is ready
 * once the previous task of its microbatch has finished. Every task takes
 * exactly one unit, so all tasks started at time t finish at t + 1.
 *
 * Policies:
 * - 'gpipe': every microbatch is injected at t = 0; a stage prefers ready
 *   forward tasks over backward tasks.
 * - '1f1b': at most `maxInFlight` (default S) microbatches are in flight
 *   (injected but not finished with their last backward hop); microbatches
 *   are injected in index order as slots free up; a stage prefers ready
 *   backward tasks over forward tasks.
 * Ties are broken by the lowest microbatch index.
 *
 * Used by unit tests and by the coordinator to reason about iteration time.
 */
import { backwardPath, forwardPath, type Direction, type Hop } from '../shared/schedule/paths';

/** Which schedule the simulated stages follow. */
export type SchedulePolicy = 'gpipe' | '1f1b';

export interface SimulationOptions {
  nStages: number;
  nMicrobatches: number;
  policy: SchedulePolicy;
  /** CheckFree+ block-order swap on odd microbatches (see `paths.ts`). */
  swap: boolean;
  /** 1F1B only: the most microbatches in flight at once. Defaults to `nStages`. */
  maxInFlight?: number;
}

/** One task as executed by a stage. */
export interface ScheduledTask {
  mb: number;
  dir: Direction;
  /** Index into `forwardPath(mb)` for 'F', into `backwardPath(mb)` for 'B'. */
  hopIndex: number;
  /** Time unit in which the task ran; it finishes at `start + 1`. */
  start: number;
}

export interface SimulationResult {
  /** `stages[s]` is the ordered list of tasks stage `s` executed. */
  stages: ScheduledTask[][];
  /** Time at which the last task finished. */
  makespan: number;
  /** Largest number of microbatches that were in flight at the same time. */
  maxInFlightObserved: number;
}

/** The chain of tasks one microbatch must execute, forward hops then backward hops. */
interface Chain {
  hops: { dir: Direction; hopIndex: number; hop: Hop }[];
  /** Index of the next task to run; `hops.length` once finished. */
  next: number;
  injected: boolean;
}

function buildChain(mb: number, nStages: number, swap: boolean): Chain {
  const fwd = forwardPath(mb, nStages, swap).map((hop, hopIndex) => ({ dir: 'F' as const, hopIndex, hop }));
  const bwd = backwardPath(mb, nStages, swap).map((hop, hopIndex) => ({ dir: 'B' as const, hopIndex, hop }));
  return { hops: [...fwd, ...bwd], next: 0, injected: false };
}

function assertPositiveInt(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be an integer >= 1, got ${value}`);
  }
}

/**
 * Simulate one training iteration (all forward and backward passes of
 * `nMicrobatches` microbatches) and return what each stage ran and when.
 * Throws `Error('deadlock ...')` if no task can run while work remains.
 */
export function simulatePipeline(options: SimulationOptions): SimulationResult {
  const { nStages, nMicrobatches, policy, swap } = options;
  assertPositiveInt('nStages', nStages);
  assertPositiveInt('nMicrobatches', nMicrobatches);
  const maxInFlight = policy === 'gpipe' ? nMicrobatches : (options.maxInFlight ?? nStages);
  assertPositiveInt('maxInFlight', maxInFlight);

  const chains = Array.from({ length: nMicrobatches }, (_, mb) => buildChain(mb, nStages, swap));
  const stages: ScheduledTask[][] = Array.from({ length: nStages }, () => []);
  const preferred: Direction = policy === 'gpipe' ? 'F' : 'B';

  let nextToInject = 0;
  let inFlight = 0;
  let maxInFlightObserved = 0;
  let finished = 0;
  let t = 0;

  while (finished < nMicrobatches) {
    while (inFlight < maxInFlight && nextToInject < nMicrobatches) {
      chains[nextToInject++].injected = true;
      inFlight++;
    }
    maxInFlightObserved = Math.max(maxInFlightObserved, inFlight);

    // Each in-flight microbatch has exactly one ready task; each stage picks
    // the best one that targets it.
    const picked: (number | undefined)[] = new Array(nStages).fill(undefined);
    chains.forEach((chain, mb) => {
      if (!chain.injected || chain.next >= chain.hops.length) return;
      const task = chain.hops[chain.next];
      const current = picked[task.hop.stage];
      if (current === undefined) {
        picked[task.hop.stage] = mb;
        return;
      }
      // Chains are visited in ascending mb order, so only a direction
      // preference can displace the current pick.
      const currentDir = chains[current].hops[chains[current].next].dir;
      if (task.dir === preferred && currentDir !== preferred) picked[task.hop.stage] = mb;
    });

    let ran = 0;
    picked.forEach((mb, stage) => {
      if (mb === undefined) return;
      const chain = chains[mb];
      const task = chain.hops[chain.next];
      stages[stage].push({ mb, dir: task.dir, hopIndex: task.hopIndex, start: t });
      chain.next++;
      ran++;
      if (chain.next === chain.hops.length) {
        finished++;
        inFlight--;
      }
    });

    if (ran === 0) {
      throw new Error(
        `deadlock at t=${t}: ${nMicrobatches - finished} microbatch(es) unfinished, ` +
          `${inFlight} in flight, no task ready (policy=${policy}, S=${nStages}, M=${nMicrobatches})`,
      );
    }
    t++;
  }

  return { stages, makespan: t, maxInFlightObserved };
}

/**
 * Makespan of one iteration without swap, when forward and backward hops
 * both take one unit: M + S - 1 units of forward pipeline fill and drain,
 * and the same again for the backward pass. Both simulated policies reach
 * this bound when swap is off.
 */
export function idealIterationUnits(nMicrobatches: number, nStages: number): number {
  return 2 * (nMicrobatches + nStages - 1);
}

/** Fraction of stage-time left idle: 1 - busy units / (S * makespan). */
export function bubbleFraction(result: SimulationResult): number {
  const busy = result.stages.reduce((sum, tasks) => sum + tasks.length, 0);
  return 1 - busy / (result.stages.length * result.makespan);
}
