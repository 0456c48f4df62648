/**
 * What CPSR's background fitting costs the run it protects (issue 25, target <= 3% of iteration
 * time): a real Node swarm (coordinator + one Node tab per stage, all in this process) trains
 * with `--recovery cpsr` (the worker thread fits every stage after each checkpoint) and with
 * `--recovery stage-restore` (the same checkpoints, no fitting), alternated A B A B ... with the
 * same seed, and the mean iteration seconds are compared. Also printed: the worker's peak memory
 * (its V8 heap + external + array buffers, tfjs wasm included) and its seconds of fitting.
 *
 * The tabs share this process's cores with the worker here; in a real swarm they run on the
 * volunteers' machines and the worker only competes with the coordinator's relay. `--pace MS`
 * (default 150) makes every task last at least MS (the tabs hold each result until then), so the
 * swarm's pace is set by the volunteers, as with real GPUs, and the fitting worker can only slow
 * the iterations through the coordinator (relay, scheduling, history reads) and the tabs' short
 * compute; `--pace 0` is the unpaced upper bound (tabs and worker fight for the same cores).
 *
 * Each pair (A B, then B A) gives one overhead figure (cpsr over stage-restore, same pair); the
 * mean, the standard deviation and the range over the pairs are printed.
 *
 *   npm run bench:cpsr-overhead
 *   npm run bench:cpsr-overhead -- --iterations 60 --every 4 --pairs 3 --pace 150 --preset tiny --duty 0.1
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Coordinator, DEFAULT_COORDINATOR } from '../coordinator/server.js';
import { startNodeVolunteer, type NodeVolunteer } from '../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../shared/run-settings.js';
import { until } from '../testing/until.js';
import type { CpsrStrategy } from '../coordinator/recovery/cpsr-strategy.js';
import { flags, fmt, machine, mean, table } from './util.js';

const f = flags(process.argv.slice(2), { iterations: 'string', every: 'string', pairs: 'string', preset: 'string', warmup: 'string', duty: 'string', pace: 'string' });
const num = (k: string, d: number) => (typeof f[k] === 'string' ? Number(f[k]) : d);
const ITERATIONS = num('iterations', 48);
const EVERY = num('every', 4);
const PAIRS = num('pairs', 3);
const PACE = num('pace', 150);
const WARMUP = num('warmup', 8);
const preset = (f.preset as string) ?? 'tiny';
const DUTY = num('duty', 1);

interface Run {
  strategy: 'cpsr' | 'stage-restore';
  /** Mean seconds per iteration after the warm-up. */
  perIteration: number;
  fits: number;
  fitSeconds: number;
  readSeconds: number;
  peakBytes: number;
}

async function run(strategy: Run['strategy']): Promise<Run> {
  const settings: RunSettings = { ...DEFAULT_SETTINGS, preset, stages: 4, microbatches: 2, batch: 2, recovery: strategy };
  const dir = mkdtempSync(join(tmpdir(), 'bench-cpsr-ovh-'));
  const coord = new Coordinator({
    ...DEFAULT_COORDINATOR,
    maxReplicas: 1,
    settings,
    port: 0,
    silent: true,
    evalEvery: 0,
    maxIterations: ITERATIONS,
    clientDir: '/nonexistent',
    recovery: { ...DEFAULT_COORDINATOR.recovery, checkpointEvery: EVERY, checkpointDir: dir, cpsrFitDuty: DUTY },
  });
  const url = await coord.listen();
  const vols: NodeVolunteer[] = [];
  const seconds: number[] = [];
  let fits = 0;
  try {
    const stop = coord.scheduler.observe((r) => {
      if (r.iteration > WARMUP) seconds.push(r.seconds);
    });
    for (let i = 0; i < settings.stages; i++) vols.push(await startNodeVolunteer(url, { name: `o${i}`, ...(PACE > 0 ? { paceMs: PACE } : {}) }));
    await until(() => coord.scheduler.iteration >= ITERATIONS, `${ITERATIONS} iterations`, 1_800_000);
    stop();
    const s = coord.recovery.strategy as CpsrStrategy;
    const fitter = s.fitter;
    if (fitter) fits = fitter.fits.size;
    return { strategy, perIteration: mean(seconds), fits, fitSeconds: fitter?.fitSeconds ?? 0, readSeconds: fitter?.readSeconds ?? 0, peakBytes: fitter?.peakBytes ?? 0 };
  } finally {
    for (const v of vols) v.kill();
    await coord.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`cpsr background-fitting overhead: ${preset}, 4 stages, ${ITERATIONS} iterations (first ${WARMUP} not counted), checkpoint every ${EVERY}, fitting duty ${DUTY}, tasks paced to >= ${PACE} ms, ${PAIRS} pair(s) A/B; ${machine()}`);
const runs: Run[] = [];
for (let p = 0; p < PAIRS; p++) {
  for (const s of p % 2 === 0 ? (['stage-restore', 'cpsr'] as const) : (['cpsr', 'stage-restore'] as const)) {
    const r = await run(s);
    runs.push(r);
    console.log(`  ${s.padEnd(13)} ${fmt(r.perIteration, 3)} s/iteration${s === 'cpsr' ? `; ${fmt(r.fitSeconds, 1)} s fitting in the worker, ${fmt(r.readSeconds, 2)} s reading histories on the event loop, ${r.fits} stage(s) with a fit, peak ${fmt(r.peakBytes / 2 ** 20, 1)} MiB` : ''}`);
  }
}
const of = (s: Run['strategy']) => runs.filter((r) => r.strategy === s);
const base = mean(of('stage-restore').map((r) => r.perIteration));
const cpsr = mean(of('cpsr').map((r) => r.perIteration));
console.log(
  table(
    ['strategy', 's/iteration', 'vs stage-restore', 'worker fit s', 'worker peak MiB'],
    [
      ['stage-restore', fmt(base, 3), '-', '-', '-'],
      ['cpsr', fmt(cpsr, 3), `${fmt((cpsr / base - 1) * 100, 1)}%`, fmt(mean(of('cpsr').map((r) => r.fitSeconds)), 1), fmt(Math.max(...of('cpsr').map((r) => r.peakBytes)) / 2 ** 20, 1)],
    ],
  ),
);
const perPair = Array.from({ length: PAIRS }, (_, p) => {
  const pair = runs.slice(2 * p, 2 * p + 2);
  const a = pair.find((r) => r.strategy === 'cpsr')!.perIteration;
  const b = pair.find((r) => r.strategy === 'stage-restore')!.perIteration;
  return (a / b - 1) * 100;
});
const sd = PAIRS > 1 ? Math.sqrt(perPair.reduce((acc, x) => acc + (x - mean(perPair)) ** 2, 0) / (PAIRS - 1)) : NaN;
console.log(`overhead per pair (cpsr over stage-restore in the same pair): ${perPair.map((x) => `${fmt(x, 1)}%`).join(', ')}; mean ${fmt(mean(perPair), 1)}%, sd ${fmt(sd, 1)}, range ${fmt(Math.min(...perPair), 1)}..${fmt(Math.max(...perPair), 1)}%`);
console.log(`overhead of background fitting on iteration time: ${fmt((cpsr / base - 1) * 100, 1)}% (target <= 3%); fitting time per training time: ${fmt((mean(of('cpsr').map((r) => r.fitSeconds)) / (cpsr * (ITERATIONS - WARMUP))) * 100, 0)}% of one core`);
process.exit(0);
