/**
 * bench:skip-swarm: SkipPipe's iteration time MEASURED in a swarm (bench:skip is the time model):
 * a real coordinator (its placement, scheduler, relay checks, barrier) with protocol-level paced
 * volunteers (bench/paced-volunteer.ts: each task takes a fixed wall time, backward 2x, and
 * answers with real frames of the run's shape and wire encoding; no model runs, so the 2-core
 * machine's CPU is not what is measured). Volunteer s serves stage s and is slower by a seeded
 * factor (printed). The same run is measured with full paths and with each skip ratio under the
 * collision-aware and the random schedule, side by side; the first `--warmup` iterations (the
 * coordinator measures the stages' task times there) are left out.
 *
 *   npm run bench:skip-swarm -- [--stages 8] [--microbatches 8] [--ratios 0.33] [--iterations 8]
 *                               [--warmup 2] [--pace 40] [--spread 3] [--seed 1] [--preset small]
 *
 * An embedding- or head-only hop costs EDGE_HOP_FRACTION of a task (as in bench:skip's time model).
 * The collision-aware schedule's per-stage caps follow the measured speed (skip-speed-coverage.ts).
 * Simplifications: the loss is a constant, so this measures time only (quality: bench:skip --study).
 */
import { Coordinator, DEFAULT_COORDINATOR } from '../coordinator/server.js';
import { DEFAULT_SETTINGS, modelConfigOf, type RunSettings } from '../shared/run-settings.js';
import { mulberry32 } from '../shared/model/rng.js';
import { until } from '../testing/until.js';
import type { SchedulerKind } from '../shared/schedule/skip-request.js';
import { simulateIteration } from '../shared/schedule/skip-timing.js';
import { PacedVolunteer, frameTemplate } from './paced-volunteer.js';
import { flags, fmt, list, machine, mean, table } from './util.js';

interface Mode {
  name: string;
  ratio: number;
  schedule: SchedulerKind;
}

async function runOnce(settings: RunSettings, paces: number[], mode: Mode, warmup: number, iterations: number): Promise<{ seconds: number[]; visits: number[]; busy: number[]; planMs: number; modelMs: number }> {
  const cfg = modelConfigOf(settings);
  const shape = [settings.batch, cfg.seqLen, cfg.dModel];
  const total = warmup + iterations;
  const coord = new Coordinator({
    ...DEFAULT_COORDINATOR,
    settings,
    port: 0,
    silent: true,
    evalEvery: 0,
    maxIterations: total,
    rebalanceEvery: 0,
    replicaSyncEvery: 0,
    clientDir: '/nonexistent',
    dataDir: null,
    skipRatio: mode.ratio,
    skipSchedule: mode.schedule,
  });
  const url = await coord.listen();
  const act = frameTemplate('act', shape, settings.wire!);
  const grad = frameTemplate('grad', shape, settings.wire!);
  const vols: PacedVolunteer[] = [];
  try {
    coord.scheduler.setPaused(true);
    // One at a time, so volunteer s takes stage s (vacant stages are filled in stage order).
    for (const [s, pace] of paces.entries()) {
      vols.push(new PacedVolunteer(url, act, grad, { forwardMs: pace, codecMs: 0 }));
      await until(() => coord.stages.owner(s) !== undefined, `stage ${s} served`, 30_000);
    }
    coord.scheduler.setPaused(false);
    await until(() => coord.scheduler.iteration >= warmup, `${warmup} iterations`, 1_200_000);
    const busy0 = vols.map((v) => v.busyMs);
    const plan0 = { ms: coord.scheduler.skips?.planMs ?? 0, n: coord.scheduler.skips?.plans ?? 0 };
    await until(() => coord.scheduler.iteration >= total, `${total} iterations`, 1_200_000);
    // Paced compute per stage per measured iteration (includes a little of the next iteration's start).
    const busy = vols.map((v, s) => (v.busyMs - busy0[s]!) / iterations);
    // The time model (skip-timing.ts) on the paths the measured iterations ran, with the paced stage times.
    const costs = { forwardMs: paces, backwardMs: paces.map((p) => 2 * p), linkMs: paces.map(() => paces.map(() => 0)) };
    const ran = coord.scheduler.skips?.recorded().iterations.slice(warmup).map((p) => p.paths) ?? [];
    const fullOrders = Array.from({ length: settings.microbatches }, () => paces.map((_, s) => s));
    const modelMs = mean((ran.length ? ran : [fullOrders]).map((o) => simulateIteration(o, paces.length, costs).makespanMs));
    const plans = (coord.scheduler.skips?.plans ?? 0) - plan0.n;
    if (coord.scheduler.skips?.aheadPlans) console.log(`  ${mode.name}: ${coord.scheduler.skips.aheadPlans} of ${coord.scheduler.skips.plans} plans made ahead in the worker`);
    const planMs = plans > 0 ? (coord.scheduler.skips!.planMs - plan0.ms) / plans : 0;
    const measured = coord.scheduler.history.slice(warmup);
    const visits = new Array<number>(settings.stages).fill(0);
    for (const h of measured) h.skip?.visits.forEach((n, s) => (visits[s]! += n));
    return { seconds: measured.map((h) => h.seconds), visits: measured[0]?.skip ? visits : paces.map(() => measured.length * settings.microbatches), busy, planMs, modelMs };
  } finally {
    for (const v of vols) v.close();
    await coord.close();
  }
}

async function main(): Promise<void> {
  const f = flags(process.argv.slice(2), { stages: 'string', microbatches: 'string', ratios: 'string', iterations: 'string', warmup: 'string', pace: 'string', spread: 'string', seed: 'string', preset: 'string' });
  const S = Number(f.stages ?? 8);
  const M = Number(f.microbatches ?? 8);
  const iterations = Number(f.iterations ?? 8);
  const warmup = Number(f.warmup ?? 2);
  const pace = Number(f.pace ?? 40);
  const spread = Number(f.spread ?? 3);
  const seed = Number(f.seed ?? 1);
  const ratios = list(f.ratios, ['0.33']).map(Number);
  const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: String(f.preset ?? 'small'), stages: S, microbatches: M, batch: 1, recovery: 'checkfree' };
  const rand = mulberry32(seed);
  const paces = Array.from({ length: S }, () => Math.round(pace * (1 + (spread - 1) * rand())));
  console.log(`bench:skip-swarm (${machine()}): ${S} stages, ${settings.preset} preset, M = ${M}, batch 1, ${iterations} measured iterations after ${warmup}`);
  console.log(`forward ms per task by stage (backward 2x; seed ${seed}, spread ${spread}x): ${paces.join(', ')}`);
  const modes: Mode[] = [{ name: 'full paths', ratio: 0, schedule: 'collision' }];
  for (const r of ratios) for (const schedule of ['collision', 'random'] as const) modes.push({ name: `${schedule}`, ratio: r, schedule });
  const rows: (string | number)[][] = [];
  let full = NaN;
  for (const mode of modes) {
    const { seconds, visits, busy, planMs, modelMs } = await runOnce(settings, paces, mode, warmup, iterations);
    const ms = mean(seconds) * 1000;
    if (mode.ratio === 0) full = ms;
    rows.push([mode.name, mode.ratio, fmt(ms, 0), fmt(Math.min(...seconds) * 1000, 0), fmt(Math.max(...seconds) * 1000, 0), fmt(ms / full, 2), fmt(modelMs, 0), fmt(planMs, 0), visits.join(' '), busy.map((b) => fmt(b, 0)).join(' ')]);
  }
  console.log(table(['schedule', 'skip ratio', 'iteration ms (mean)', 'min', 'max', 'x full', 'model ms', 'plan ms', 'microbatches per stage (measured iterations)', 'busy ms per stage per iteration'], rows));
}

void main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
