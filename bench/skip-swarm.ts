/**
 * bench:skip-swarm: SkipPipe's iteration time MEASURED in a swarm (bench:skip is the time model):
 * a real coordinator (its placement, scheduler, relay checks, barrier) with protocol-level paced
 * volunteers (bench/paced-volunteer.ts: each task takes a fixed wall time, backward 2x, and
 * answers with real frames of the run's shape and wire encoding; no model runs, so the 2-core
 * machine's CPU is not what is measured). Volunteer s serves stage s and is slower by a seeded
 * factor (printed). The same run is measured with full paths and with each skip ratio under the
 * collision-aware and the random schedule, side by side, each without and with the edge placement
 * (coordinator/placement/skip-edge-swapper.ts: a slow tab on stage 0 or S-1 swaps with a fast
 * intermediate one; `+ edge swap` rows, rebalancing every iteration); the first `--warmup`
 * iterations (the coordinator measures the stages' task times, and swaps, there) are left out.
 *
 * Validation loss against wall-clock (`--loss-steps n`, 0 = off): the local trainer (same preset
 * and stages, M, batch; `--loss-seeds` seeds) trains with full paths for n steps and with skip paths
 * (the collision-aware schedule, the paces of the tabs on each stage after the swaps as its stage
 * costs) for as many steps as fit the same wall-clock at the swarm's measured iteration times;
 * each step is placed at (step x the mode's measured mean iteration time), and the validation loss
 * at equal wall-clock is interpolated between evaluations (every `--loss-eval-every` steps).
 *
 *   npm run bench:skip-swarm -- [--stages 8] [--microbatches 8] [--ratios 0.33] [--iterations 8]
 *                               [--warmup 5] [--pace 40] [--spread 3] [--seed 1] [--preset small]
 *                               [--edge-swap both|on|off] [--loss-steps 0] [--loss-seeds 1] [--loss-eval-every 5]
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
import { trainLocal } from '../trainer/cli.js';
import { useNodeBackend } from '../trainer/node-backend.js';

interface Mode {
  name: string;
  ratio: number;
  schedule: SchedulerKind;
  /** Edge placement on (rebalancing every iteration; skip-edge-swapper.ts). */
  edgeSwap: boolean;
}

async function runOnce(settings: RunSettings, paces: number[], mode: Mode, warmup: number, iterations: number): Promise<{ seconds: number[]; visits: number[]; busy: number[]; planMs: number; modelMs: number; stagePaces: number[]; swaps: number }> {
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
    rebalanceEvery: mode.edgeSwap ? 1 : 0,
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
    const swaps0 = coord.events.list().filter((e) => e.message.startsWith('skip edge swap')).length;
    await until(() => coord.scheduler.iteration >= total, `${total} iterations`, 1_200_000);
    const swaps = coord.events.list().filter((e) => e.message.startsWith('skip edge swap')).length;
    if (swaps > swaps0) console.log(`  ${mode.name}: ${swaps - swaps0} edge swap(s) in the measured iterations`);
    // The pace of the tab on each stage now (edge swaps move tabs), and each stage's paced compute
    // per measured iteration (includes a little of the next iteration's start).
    const stagePaces = paces.map((_, s) => paces[vols.findIndex((v) => v.stageIndex === s)] ?? NaN);
    const busy = stagePaces.map((_, s) => {
      const i = vols.findIndex((v) => v.stageIndex === s);
      return i < 0 ? NaN : (vols[i]!.busyMs - busy0[i]!) / iterations;
    });
    // The time model (skip-timing.ts) on the paths the measured iterations ran, with the paced stage times.
    const costs = { forwardMs: stagePaces, backwardMs: stagePaces.map((p) => 2 * p), linkMs: paces.map(() => paces.map(() => 0)) };
    const ran = coord.scheduler.skips?.recorded().iterations.slice(warmup).map((p) => p.paths) ?? [];
    const fullOrders = Array.from({ length: settings.microbatches }, () => paces.map((_, s) => s));
    const modelMs = mean((ran.length ? ran : [fullOrders]).map((o) => simulateIteration(o, stagePaces.length, costs).makespanMs));
    const plans = (coord.scheduler.skips?.plans ?? 0) - plan0.n;
    if (coord.scheduler.skips?.aheadPlans) console.log(`  ${mode.name}: ${coord.scheduler.skips.aheadPlans} of ${coord.scheduler.skips.plans} plans made ahead in the worker`);
    const planMs = plans > 0 ? (coord.scheduler.skips!.planMs - plan0.ms) / plans : 0;
    const measured = coord.scheduler.history.slice(warmup);
    const visits = new Array<number>(settings.stages).fill(0);
    for (const h of measured) h.skip?.visits.forEach((n, s) => (visits[s]! += n));
    return { seconds: measured.map((h) => h.seconds), visits: measured[0]?.skip ? visits : paces.map(() => measured.length * settings.microbatches), busy, planMs, modelMs, stagePaces, swaps };
  } finally {
    for (const v of vols) v.close();
    await coord.close();
  }
}

/** Validation loss at wall-clock `t` (s), linear between the evaluations placed at step x `itS`. */
function lossAt(vals: readonly { step: number; loss: number }[], itS: number, t: number): number {
  const pts = vals.map((v) => ({ t: v.step * itS, loss: v.loss }));
  if (t <= pts[0]!.t) return pts[0]!.loss;
  for (let k = 1; k < pts.length; k++) {
    const a = pts[k - 1]!;
    const b = pts[k]!;
    if (t <= b.t) return a.loss + ((b.loss - a.loss) * (t - a.t)) / (b.t - a.t);
  }
  // Within a step past the last evaluation (the step count was rounded to the budget): the last one.
  return t - pts[pts.length - 1]!.t <= itS ? pts[pts.length - 1]!.loss : NaN;
}

/** Validation loss against wall-clock, full vs skip paths, at the swarm's measured iteration times (see the module comment). */
async function lossVsWallClock(o: { settings: RunSettings; ratio: number; fullS: number; skipS: number; stagePaces: number[]; steps: number; seeds: number; evalEvery: number }): Promise<void> {
  await useNodeBackend('wasm');
  const skipSteps = Math.floor((o.steps * o.fullS) / o.skipS); // never past the budget
  const budget = o.steps * o.fullS;
  console.log(`\nValidation loss against wall-clock (local trainer, ${o.settings.preset}, ${o.settings.stages} stages, M = ${o.settings.microbatches}, batch ${o.settings.batch}; measured swarm iteration: full ${fmt(o.fullS, 3)} s, skip ${o.ratio} collision-aware + edge swap ${fmt(o.skipS, 3)} s): full ${o.steps} steps, skip ${skipSteps} steps in the same ${fmt(budget, 1)} s`);
  const stageCosts = { forwardMs: o.stagePaces, backwardMs: o.stagePaces.map((p) => 2 * p), linkMs: o.stagePaces.map(() => o.stagePaces.map(() => 0)) };
  const fractions = [0.25, 0.5, 0.75, 1];
  const rows: (string | number)[][] = [];
  const atBudget: { full: number; skip: number }[] = [];
  for (let k = 0; k < o.seeds; k++) {
    const base = { ...o.settings, seed: 1000 + k + 1, evalEvery: o.evalEvery, evalBatches: 4, swap: false };
    const full = await trainLocal({ ...base, steps: o.steps });
    const skip = await trainLocal({ ...base, steps: skipSteps, skipRatio: o.ratio, scheduler: 'collision', stageCosts });
    for (const f of fractions) {
      const t = f * budget;
      const lf = lossAt(full.valLosses, o.fullS, t);
      const ls = lossAt(skip.valLosses, o.skipS, t);
      rows.push([base.seed, fmt(t, 1), fmt(lf, 4), fmt(ls, 4), fmt(ls / lf, 4)]);
      if (f === 1) atBudget.push({ full: lf, skip: ls });
    }
  }
  console.log(table(['seed', 'wall-clock s', 'val loss full', `val loss skip ${o.ratio}`, 'skip / full'], rows));
  const mf = mean(atBudget.map((x) => x.full));
  const ms = mean(atBudget.map((x) => x.skip));
  console.log(`at equal wall-clock (${fmt(budget, 1)} s; skip: its last validation, at most one step before), mean over ${o.seeds} seed(s): full ${fmt(mf, 4)}, skip ${fmt(ms, 4)}: ${fmt((ms / mf - 1) * 100, 2)}% (target: within +2%)`);
}

async function main(): Promise<void> {
  const f = flags(process.argv.slice(2), { stages: 'string', microbatches: 'string', ratios: 'string', iterations: 'string', warmup: 'string', pace: 'string', spread: 'string', seed: 'string', preset: 'string', 'edge-swap': 'string', 'loss-steps': 'string', 'loss-seeds': 'string', 'loss-eval-every': 'string' });
  const S = Number(f.stages ?? 8);
  const M = Number(f.microbatches ?? 8);
  const iterations = Number(f.iterations ?? 8);
  const warmup = Number(f.warmup ?? 5);
  const pace = Number(f.pace ?? 40);
  const spread = Number(f.spread ?? 3);
  const seed = Number(f.seed ?? 1);
  const edge = String(f['edge-swap'] ?? 'both');
  if (!['both', 'on', 'off'].includes(edge)) throw new Error(`--edge-swap is both, on or off, got ${edge}`);
  const lossSteps = Number(f['loss-steps'] ?? 0);
  const ratios = list(f.ratios, ['0.33']).map(Number);
  const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: String(f.preset ?? 'small'), stages: S, microbatches: M, batch: 1, recovery: 'checkfree' };
  const rand = mulberry32(seed);
  const paces = Array.from({ length: S }, () => Math.round(pace * (1 + (spread - 1) * rand())));
  console.log(`bench:skip-swarm (${machine()}): ${S} stages, ${settings.preset} preset, M = ${M}, batch 1, ${iterations} measured iterations after ${warmup}`);
  console.log(`forward ms per task by volunteer, joined on stage = index (backward 2x; seed ${seed}, spread ${spread}x): ${paces.join(', ')}`);
  const modes: Mode[] = [{ name: 'full paths', ratio: 0, schedule: 'collision', edgeSwap: false }];
  const swaps = edge === 'both' ? [false, true] : [edge === 'on'];
  for (const r of ratios) for (const edgeSwap of swaps) for (const schedule of ['collision', 'random'] as const) modes.push({ name: `${schedule}${edgeSwap ? ' + edge swap' : ''}`, ratio: r, schedule, edgeSwap });
  const rows: (string | number)[][] = [];
  let full = NaN;
  let lossInput: { ratio: number; skipS: number; stagePaces: number[] } | null = null;
  for (const mode of modes) {
    const { seconds, visits, busy, planMs, modelMs, stagePaces } = await runOnce(settings, paces, mode, warmup, iterations);
    const ms = mean(seconds) * 1000;
    if (mode.ratio === 0) full = ms;
    if (mode.ratio > 0 && mode.schedule === 'collision' && (mode.edgeSwap || !lossInput)) lossInput = { ratio: mode.ratio, skipS: ms / 1000, stagePaces };
    rows.push([mode.name, mode.ratio, fmt(ms, 0), fmt(Math.min(...seconds) * 1000, 0), fmt(Math.max(...seconds) * 1000, 0), fmt(ms / full, 2), fmt(modelMs, 0), fmt(planMs, 0), stagePaces.join(' '), visits.join(' '), busy.map((b) => fmt(b, 0)).join(' ')]);
  }
  console.log(table(['schedule', 'skip ratio', 'iteration ms (mean)', 'min', 'max', 'x full', 'model ms', 'plan ms', 'pace by stage (after swaps)', 'microbatches per stage (measured iterations)', 'busy ms per stage per iteration'], rows));
  if (lossSteps > 0 && lossInput) await lossVsWallClock({ settings, ...lossInput, fullS: full / 1000, steps: lossSteps, seeds: Number(f['loss-seeds'] ?? 1), evalEvery: Number(f['loss-eval-every'] ?? 5) });
}

void main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
