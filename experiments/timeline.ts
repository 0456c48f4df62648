/**
 * How long one synchronous iteration takes in a real swarm, given how long each task took here.
 *
 * The in-process pipeline (trainer/pipeline.ts) runs every task of an iteration one after the
 * other on one CPU. In the swarm each stage is a different volunteer, so tasks of different stages
 * run at the same time, and every hop between two stages moves a tensor over the network. This is
 * a continuous-time version of experiments/pipeline-simulator.ts: the same paths (forwardPath /
 * backwardPath, CheckFree+ swaps included), the coordinator's 1F1B policy (at most `maxInFlight`
 * microbatches in flight, default S; a stage runs a ready backward task before a ready forward
 * task, then the lowest microbatch), but each task takes its measured time and each hop between
 * two different stages adds the relay time of the activation (forward) or gradient (backward).
 *
 * When all microbatches are back at the embedding the coordinator tells every stage to clip and
 * step (one round trip) and the iteration ends when the slowest stage has stepped.
 */
import { forwardPath } from '../shared/schedule/paths.js';

/** Measured seconds of every task of one iteration: [microbatch][forward-path hop index]. */
export interface TaskSeconds {
  forward: number[][];
  backward: number[][];
}

/** What one iteration cost on this machine, task by task. */
export interface IterationTiming {
  swap: boolean;
  tasks: TaskSeconds;
  /** clipAndStep seconds per stage. */
  step: number[];
}

export interface TimelineOptions {
  nStages: number;
  timing: IterationTiming;
  /** Seconds to relay one activation or gradient between two stages (latency included). */
  hopSeconds: number;
  /** Seconds for a microbatch's tokens to reach stage 0 (and its targets the last stage). */
  inputSeconds?: number;
  /** Seconds of the step barrier's round trip (coordinator -> stages -> coordinator). */
  barrierSeconds?: number;
  /**
   * Bamboo-style redundancy: every stage also runs, for every microbatch and direction, the work
   * of its successor (stage (s+1) mod S), so each task lasts its own time plus the successor's
   * time for the same microbatch and direction; each step also steps the successor's copy.
   */
  redundant?: boolean;
  /** 1F1B depth (default: the number of stages, as the coordinator). */
  maxInFlight?: number;
}

export interface TimelineResult {
  /** Seconds from the first microbatch entering to the last stage finishing its step. */
  seconds: number;
  /** Seconds until the last backward task finished (before the step barrier). */
  tasksSeconds: number;
  /** Sum of every task and step time (what one CPU spends, serially). */
  serialSeconds: number;
}

interface Task {
  stage: number;
  dir: 'F' | 'B';
  /** Forward-path hop index (the backward task of hop i undoes forward hop i). */
  hop: number;
  seconds: number;
}

/** The task chain of one microbatch: forward hops in order, then backward hops in reverse. */
function chainOf(mb: number, o: TimelineOptions, extra: (mb: number, dir: 'F' | 'B', stage: number) => number): Task[] {
  const path = forwardPath(mb, o.nStages, o.timing.swap);
  const f = o.timing.tasks.forward[mb];
  const b = o.timing.tasks.backward[mb];
  if (!f || !b || f.length !== path.length || b.length !== path.length) {
    throw new RangeError(`timing for microbatch ${mb} does not match its ${path.length}-hop path`);
  }
  const fwd: Task[] = path.map((h, i) => ({ stage: h.stage, dir: 'F', hop: i, seconds: f[i]! + extra(mb, 'F', h.stage) }));
  const bwd: Task[] = path
    .map((h, i) => ({ stage: h.stage, dir: 'B' as const, hop: i, seconds: b[i]! + extra(mb, 'B', h.stage) }))
    .reverse();
  return [...fwd, ...bwd];
}

/** Per microbatch, direction and stage: seconds the stage spent on that microbatch (all its hops). */
function perStageSeconds(o: TimelineOptions, mb: number, dir: 'F' | 'B'): { total: number[]; hops: number[] } {
  const total = new Array<number>(o.nStages).fill(0);
  const hops = new Array<number>(o.nStages).fill(0);
  const secs = dir === 'F' ? o.timing.tasks.forward[mb]! : o.timing.tasks.backward[mb]!;
  forwardPath(mb, o.nStages, o.timing.swap).forEach((h, i) => {
    total[h.stage]! += secs[i]!;
    hops[h.stage]! += 1;
  });
  return { total, hops };
}

/** Simulates one iteration; see the file comment. */
export function simulateIteration(o: TimelineOptions): TimelineResult {
  const S = o.nStages;
  const M = o.timing.tasks.forward.length;
  if (!Number.isInteger(S) || S < 1) throw new RangeError(`nStages must be an integer >= 1, got ${S}`);
  if (M < 1 || o.timing.tasks.backward.length !== M) throw new RangeError('timing needs forward and backward seconds for >= 1 microbatch');
  if (o.timing.step.length !== S) throw new RangeError(`timing has ${o.timing.step.length} step times for ${S} stages`);
  if (!(o.hopSeconds >= 0)) throw new RangeError(`hopSeconds must be >= 0, got ${o.hopSeconds}`);
  const maxInFlight = o.maxInFlight ?? S;
  const inputSeconds = o.inputSeconds ?? 0;
  const barrierSeconds = o.barrierSeconds ?? 0;

  // Redundancy: a stage's task also runs the successor's work for that microbatch and direction,
  // shared out over the stage's hops of that microbatch (one hop each on the plain path).
  const extra = (mb: number, dir: 'F' | 'B', stage: number): number => {
    if (!o.redundant || S === 1) return 0;
    const { total, hops } = perStageSeconds(o, mb, dir);
    return total[(stage + 1) % S]! / hops[stage]!;
  };
  const chains = Array.from({ length: M }, (_, mb) => chainOf(mb, o, extra));
  const next = new Array<number>(M).fill(0);
  const readyAt = new Array<number>(M).fill(Infinity);
  const stageFree = new Array<number>(S).fill(0);
  let serial = 0;
  for (const c of chains) for (const t of c) serial += t.seconds;

  let injected = 0;
  let inFlight = 0;
  let finished = 0;
  let lastFinish = 0;
  const inject = (at: number) => {
    while (inFlight < maxInFlight && injected < M) {
      readyAt[injected++] = at + inputSeconds;
      inFlight++;
    }
  };
  inject(0);
  let now = 0;
  let guard = 0;
  while (finished < M) {
    if (++guard > 100 * M * (2 * S + 4) + 1000) throw new Error('timeline simulation did not converge');
    let started = false;
    for (let s = 0; s < S; s++) {
      if (stageFree[s]! > now) continue;
      let pick = -1;
      for (let mb = 0; mb < injected; mb++) {
        if (next[mb]! >= chains[mb]!.length || readyAt[mb]! > now) continue;
        const t = chains[mb]![next[mb]!]!;
        if (t.stage !== s) continue;
        if (pick < 0) pick = mb;
        else if (t.dir === 'B' && chains[pick]![next[pick]!]!.dir !== 'B') pick = mb;
      }
      if (pick < 0) continue;
      const chain = chains[pick]!;
      const task = chain[next[pick]!]!;
      const end = now + task.seconds;
      stageFree[s] = end;
      next[pick]!++;
      started = true;
      if (next[pick]! === chain.length) {
        finished++;
        inFlight--;
        readyAt[pick] = Infinity;
        lastFinish = Math.max(lastFinish, end);
        inject(end);
      } else {
        const following = chain[next[pick]!]!;
        readyAt[pick] = end + (following.stage !== task.stage ? o.hopSeconds : 0);
      }
    }
    if (finished === M) break;
    // Zero-length tasks can make more work ready at this same moment: look again before advancing.
    if (started) continue;
    // Advance to the next moment something can change (a stage frees up or a task becomes ready).
    let t = Infinity;
    for (const f of stageFree) if (f > now) t = Math.min(t, f);
    for (let mb = 0; mb < injected; mb++) if (next[mb]! < chains[mb]!.length && readyAt[mb]! > now) t = Math.min(t, readyAt[mb]!);
    if (t === Infinity) throw new Error(`timeline deadlock at ${now}s: ${M - finished} microbatch(es) unfinished`);
    now = t;
  }

  const steps = o.timing.step.map((x, s) => x + (o.redundant && S > 1 ? o.timing.step[(s + 1) % S]! : 0));
  for (const x of steps) serial += x;
  const stepEnd = Math.max(...steps);
  return { seconds: lastFinish + barrierSeconds + stepEnd, tasksSeconds: lastFinish, serialSeconds: serial };
}

/** Element-wise median of several timings of the same shape (all with the same swap flag). */
export function medianTiming(timings: IterationTiming[]): IterationTiming {
  if (timings.length === 0) throw new RangeError('medianTiming needs at least one timing');
  const first = timings[0]!;
  const med = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  };
  const grid = (pick: (t: IterationTiming) => number[][]) =>
    pick(first).map((row, mb) => row.map((_, i) => med(timings.map((t) => pick(t)[mb]![i]!))));
  return {
    swap: first.swap,
    tasks: { forward: grid((t) => t.tasks.forward), backward: grid((t) => t.tasks.backward) },
    step: first.step.map((_, s) => med(timings.map((t) => t.step[s]!))),
  };
}
