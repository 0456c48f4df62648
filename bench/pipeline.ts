/**
 * Pipeline efficiency benchmark: a real local swarm (Coordinator + S Node volunteers on tfjs
 * wasm) trains for some iterations; compares the measured iteration time with the ideal
 * pipeline time (M + S - 1) * t, where t is the slowest stage's forward + backward compute per
 * microbatch (from the `computeMs` every volunteer reports with each task result).
 *
 *   npm run bench:pipeline
 *   npm run bench:pipeline -- --preset small --microbatches 8 --iterations 6
 *   npm run bench:pipeline -- --modes shared          (only the in-process run)
 *
 * Two runs, side by side:
 *   shared     all volunteers in this process, as the tests and `npm run swarm`'s Node tabs do:
 *              they share one JS thread and one tfjs engine, so stage compute cannot overlap at
 *              all; the floor is then the fully serial sum of all stage work, not (M+S-1)*t.
 *   processes  one child process per volunteer (the coordinator stays here): stages can overlap,
 *              up to the machine's core count.
 *
 * Printed per run (medians over the measured iterations):
 *   iter        measured wall time of an iteration (coordinator's history, includes the step barrier)
 *   t           slowest stage's (sum of F + B computeMs) / M
 *   ideal       (M + S - 1) * t          efficiency = ideal / iter
 *   ideal+opt   ideal + the slowest optimizer step (the barrier every iteration pays)
 *   serial      sum over all stages of F + B + optimizer work: what one thread must do
 *   serial/iter how much of the wall time the (single) thread spent computing
 */
import { fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Coordinator, DEFAULT_COORDINATOR } from '../coordinator/server.js';
import { startNodeVolunteer, type NodeVolunteer } from '../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, modelConfigOf, usesSwap, type RunSettings, type RecoveryStrategy } from '../shared/run-settings.js';
import { simulatePipeline, bubbleFraction } from '../experiments/pipeline-simulator.js';
import type { OutMeta, TaskMeta } from '../shared/protocol/events.js';
import type { VolunteerSocket } from '../shared/volunteer/agent.js';
import { flags, fmt, machine, median, table, loadLine } from './util.js';
import { until } from '../testing/until.js';

interface TaskRec {
  kind: 'task';
  stage: number;
  iteration: number;
  dir: string;
  computeMs: number;
}
interface StatRec {
  kind: 'stat';
  stage: number;
  iteration: number;
  /** compute of the iteration + clip & optimizer step (the agent's stepMs) */
  computeMs: number;
}
type Rec = TaskRec | StatRec;

/** Reads every task result and stats message a volunteer sends. */
function instrument(socket: VolunteerSocket, sink: (r: Rec) => void): void {
  let stage = -1;
  let iteration = -1;
  socket.on('task', (meta: TaskMeta) => void (stage = meta.stage));
  socket.onAnyOutgoing((event: string, ...args: unknown[]) => {
    if (event === 'out') {
      const m = args[0] as OutMeta;
      iteration = m.iteration;
      sink({ kind: 'task', stage, iteration: m.iteration, dir: m.dir, computeMs: m.computeMs });
    } else if (event === 'stats') {
      sink({ kind: 'stat', stage, iteration, computeMs: (args[0] as { computeMs: number }).computeMs });
    }
  });
}

async function volunteerMain(url: string, name: string): Promise<void> {
  const v = await startNodeVolunteer(url, { name });
  instrument(v.socket, (r) => process.send!(r));
  process.on('message', (m: { type: string }) => {
    if (m.type === 'stop') {
      v.kill();
      process.exit(0);
    }
  });
  process.on('disconnect', () => process.exit(0));
  process.send!({ kind: 'ready' });
}

interface Result {
  mode: string;
  iterMs: number;
  t: number;
  slowest: number;
  ideal: number;
  idealOpt: number;
  serial: number;
  perStage: { f: number; b: number; opt: number }[];
  iterations: number;
  loss: number;
}

async function runSwarm(mode: 'shared' | 'processes', s: RunSettings, warmup: number, iterations: number): Promise<Result> {
  const total = warmup + iterations;
  const coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings: s, port: 0, silent: true, evalEvery: 0, maxIterations: total, clientDir: '/nonexistent' });
  const url = await coord.listen();
  const recs: Rec[] = [];
  const sink = (r: Rec) => void recs.push(r);
  const vols: NodeVolunteer[] = [];
  const kids: ChildProcess[] = [];
  try {
    for (let i = 0; i < s.stages; i++) {
      if (mode === 'shared') {
        const v = await startNodeVolunteer(url, { name: `b${i}` });
        instrument(v.socket, sink);
        vols.push(v);
      } else {
        const k = fork(fileURLToPath(import.meta.url), ['--volunteer', url, '--name', `p${i}`], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        kids.push(k);
        await new Promise<void>((resolve, reject) => {
          k.on('message', (m: Rec | { kind: 'ready' }) => (m.kind === 'ready' ? resolve() : sink(m)));
          k.once('exit', (c) => reject(new Error(`volunteer process exited (${c})`)));
        });
      }
    }
    await until(() => coord.scheduler.iteration >= total, `${total} iterations`, 30 * 60_000);
    await until(() => recs.filter((r) => r.kind === 'stat' && r.iteration === total - 1).length >= s.stages, 'last stats', 10_000);
  } finally {
    for (const v of vols) v.kill();
    for (const k of kids) k.send({ type: 'stop' });
    await coord.close();
  }
  const S = s.stages;
  const M = s.microbatches;
  const rows = { iter: [] as number[], t: [] as number[], ideal: [] as number[], idealOpt: [] as number[], serial: [] as number[] };
  const stageSums = Array.from({ length: S }, () => ({ f: [] as number[], b: [] as number[], opt: [] as number[] }));
  const slowestCount = new Array<number>(S).fill(0);
  for (let it = warmup; it < total; it++) {
    const rec = coord.scheduler.history.find((h) => h.iteration === it + 1);
    if (!rec) continue;
    const per = Array.from({ length: S }, (_, st) => {
      const tasks = recs.filter((r): r is TaskRec => r.kind === 'task' && r.iteration === it && r.stage === st);
      const f = tasks.filter((r) => r.dir === 'F').reduce((a, r) => a + r.computeMs, 0);
      const b = tasks.filter((r) => r.dir === 'B').reduce((a, r) => a + r.computeMs, 0);
      const stat = recs.find((r): r is StatRec => r.kind === 'stat' && r.iteration === it && r.stage === st);
      const opt = stat ? Math.max(0, stat.computeMs - f - b) : 0;
      return { f, b, opt };
    });
    per.forEach((p, st) => {
      stageSums[st]!.f.push(p.f / M);
      stageSums[st]!.b.push(p.b / M);
      stageSums[st]!.opt.push(p.opt);
    });
    const ts = per.map((p) => (p.f + p.b) / M);
    const t = Math.max(...ts);
    slowestCount[ts.indexOf(t)]!++;
    const opt = Math.max(...per.map((p) => p.opt));
    rows.iter.push(rec.seconds * 1000);
    rows.t.push(t);
    rows.ideal.push((M + S - 1) * t);
    rows.idealOpt.push((M + S - 1) * t + opt);
    rows.serial.push(per.reduce((a, p) => a + p.f + p.b + p.opt, 0));
  }
  return {
    mode,
    iterMs: median(rows.iter),
    t: median(rows.t),
    slowest: slowestCount.indexOf(Math.max(...slowestCount)),
    ideal: median(rows.ideal),
    idealOpt: median(rows.idealOpt),
    serial: median(rows.serial),
    perStage: stageSums.map((x) => ({ f: median(x.f), b: median(x.b), opt: median(x.opt) })),
    iterations: rows.iter.length,
    loss: coord.scheduler.lastTrainLoss ?? NaN,
  };
}

async function main(): Promise<void> {
  const f = flags(process.argv.slice(2), {
    preset: 'string',
    stages: 'string',
    microbatches: 'string',
    batch: 'string',
    iterations: 'string',
    warmup: 'string',
    recovery: 'string',
    modes: 'string',
    volunteer: 'string',
    name: 'string',
  });
  if (typeof f.volunteer === 'string') return volunteerMain(f.volunteer, String(f.name ?? 'p'));
  const s: RunSettings = {
    ...DEFAULT_SETTINGS,
    preset: String(f.preset ?? 'tiny'),
    stages: Number(f.stages ?? 4),
    microbatches: Number(f.microbatches ?? 8),
    batch: Number(f.batch ?? 4),
    recovery: String(f.recovery ?? 'checkfree') as RecoveryStrategy,
  };
  const iterations = Number(f.iterations ?? 8);
  const warmup = Number(f.warmup ?? 2);
  const modes = String(f.modes ?? 'shared,processes').split(',') as ('shared' | 'processes')[];
  const cfg = modelConfigOf(s);
  const S = s.stages;
  const M = s.microbatches;
  console.log(`pipeline benchmark  ${new Date().toISOString()}  ${machine()}`);
  console.log(
    `preset ${s.preset} (dModel ${cfg.dModel}, ${cfg.nLayers} layers, seqLen ${cfg.seqLen}), S=${S} stages, M=${M} microbatches x batch ${s.batch}, ` +
      `${s.recovery} schedule${usesSwap(s) ? ' (swapped odd microbatches)' : ''}, wasm; ${warmup} warm-up + ${iterations} measured iterations`,
  );
  const sim = simulatePipeline({ nStages: S, nMicrobatches: M, policy: '1f1b', swap: usesSwap(s) });
  console.log(`simulator (unit F = B): 1F1B makespan ${sim.makespan} units = 2(M+S-1) = ${2 * (M + S - 1)}; bubble ${fmt(100 * bubbleFraction(sim), 1)}%`);

  const results: Result[] = [];
  for (const mode of modes) results.push(await runSwarm(mode, s, warmup, iterations));

  // Per-task wall times of the 'processes' run include time the OS gave other processes (4 volunteers
  // + the coordinator on fewer cores), so the reference t is the shared run's, where exactly one
  // task computes at a time.
  const ref = results.find((r) => r.mode === 'shared');
  console.log('\nper iteration, medians (ms); t = slowest stage F+B per microbatch:');
  console.log(
    table(
      ['volunteers', 'iter', 't (own)', 'slowest', 'ideal (M+S-1)t', 'efficiency', 'ideal+opt', 'eff. incl opt', 'serial sum', 'serial/iter', 'n'],
      results.map((r) => {
        const t = ref ? ref.t : r.t;
        const ideal = (M + S - 1) * t;
        const idealOpt = ideal + (ref ? ref.idealOpt - ref.ideal : r.idealOpt - r.ideal);
        return [
          r.mode,
          fmt(r.iterMs, 0),
          fmt(r.t, 1),
          `stage ${r.slowest}`,
          fmt(ideal, 0),
          fmt(ideal / r.iterMs, 2),
          fmt(idealOpt, 0),
          fmt(idealOpt / r.iterMs, 2),
          fmt(ref ? ref.serial : r.serial, 0),
          fmt((ref ? ref.serial : r.serial) / r.iterMs, 2),
          String(r.iterations),
        ];
      }),
    ),
  );
  console.log(
    ref
      ? `ideal, serial: from the shared run's per-task compute (one task at a time there, so uncontended); 't (own)' of 'processes' is inflated by time-slicing.`
      : `ideal, serial: from this run's own per-task wall times.`,
  );
  for (const r of results) {
    console.log(`\n${r.mode}: per-stage compute per microbatch (F, B) and optimizer step per iteration, ms (medians); final train loss ${fmt(r.loss, 4)}`);
    console.log(table(['stage', 'F', 'B', 'F+B', 'opt'], r.perStage.map((p, i) => [String(i), fmt(p.f, 1), fmt(p.b, 1), fmt(p.f + p.b, 1), fmt(p.opt, 1)])));
  }
  console.log(
    `\nnote: with 'shared' every volunteer runs on one JS thread, so the best possible is the serial sum ` +
      `(efficiency vs (M+S-1)t cannot exceed ideal/serial ~ ${results[0] ? fmt(results[0].ideal / results[0].serial, 2) : '-'} here); ` +
      `'processes' can overlap stages, but only ${machine().split(' x ')[0]} cores serve ${S} volunteers + the coordinator.`,
  );
  if (ref) {
    const cores = os.cpus().length;
    const floor = Math.max((M + S - 1) * ref.t, ref.serial / cores);
    const procs = results.find((r) => r.mode === 'processes');
    console.log(
      `floor with ${cores} cores: max((M+S-1)t, serial/${cores}) = ${fmt(floor, 0)} ms` +
        (procs ? `; 'processes' reaches ${fmt(floor / procs.iterMs, 2)} of it, and ${fmt(ref.iterMs / procs.iterMs, 2)}x the shared run's speed` : ''),
    );
  }
  console.log(`end: ${loadLine()}`);
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
