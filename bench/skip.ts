/**
 * bench:skip: SkipPipe's iteration time, SIMULATED (shared/schedule/skip-timing.ts, the time model
 * the collision-aware scheduler decides over): a `small`-preset stage's forward and backward times
 * are measured here (wasm, first / middle / last stage), each of the 8 stages is served by a
 * volunteer that is slower by a seeded factor (printed), hops cost --link-ms, and every iteration
 * of --microbatches microbatches is simulated for the full pipeline (with and without CheckFree+'s
 * swaps) and for each skip ratio under the random and the collision-aware schedule. No tab, socket
 * or coordinator runs: the figures are the model's, side by side.
 *
 * --study adds the half-model study with the local trainer (tiny preset, 4 stages, --seeds): the
 * validation loss of the full model and of half its stages (0 and 3), for a model trained with
 * skipping (--study-ratio) and the same budget without, and the simulated wall-clock at which each
 * run's validation loss reached the full run's final loss.
 *
 *   npm run bench:skip -- [--stages 8] [--microbatches 8] [--ratios 0.25,0.33,0.5] [--iterations 10]
 *                         [--spread 3] [--link-ms 20] [--seed 1] [--times f/b,f/b,f/b] [--study] [--seeds 2] [--steps 40]
 *
 * --times gives the first / middle / last stage's forward/backward ms instead of measuring them
 * (on a busy machine the measurement moves from run to run; the printed values replay a run).
 */
import { useNodeBackend } from '../trainer/node-backend.js';
import { configForStages, getPreset } from '../shared/model/config.js';
import { measureStage } from '../shared/model/roofline.js';
import { mulberry32 } from '../shared/model/rng.js';
import { skipRules } from '../shared/schedule/skip-paths.js';
import { randomSchedule } from '../shared/schedule/skip-random.js';
import { collisionSchedule } from '../shared/schedule/skip-collision.js';
import { fullSchedule, unvisitedStages, type ScheduleRequest } from '../shared/schedule/skip-request.js';
import { simulateIteration, type StageCosts } from '../shared/schedule/skip-timing.js';
import { trainLocal } from '../trainer/cli.js';
import { DEFAULT_SETTINGS } from '../shared/run-settings.js';
import { flags, fmt, list, machine, mean, table } from './util.js';

interface StageTimes {
  first: { f: number; b: number };
  middle: { f: number; b: number };
  last: { f: number; b: number };
}

async function measure(preset: string, stages: number, batch: number): Promise<StageTimes> {
  const cfg = configForStages(getPreset(preset), stages);
  const at = async (i: number) => {
    const t = await measureStage(cfg, i, { batch, reps: 3, warmup: 1 });
    return { f: t.forwardMs, b: t.backwardMs };
  };
  return { first: await at(0), middle: await at(1), last: await at(stages - 1) };
}

/** `--times f/b,f/b,f/b` (first, middle, last stage): replay a run's stage times instead of measuring them. */
function timesOf(v: string): StageTimes {
  const parts = v.split(',').map((p) => p.split('/').map(Number));
  if (parts.length !== 3 || parts.some((p) => p.length !== 2 || p.some((x) => !Number.isFinite(x) || x < 0))) throw new Error(`--times needs first/middle/last as f/b,f/b,f/b (ms), got "${v}"`);
  const [a, b, c] = parts as [number[], number[], number[]];
  return { first: { f: a[0]!, b: a[1]! }, middle: { f: b[0]!, b: b[1]! }, last: { f: c[0]!, b: c[1]! } };
}

/** Per-stage slowness factors, log-uniform in [1, spread], seeded. */
function spreadOf(stages: number, spread: number, seed: number): number[] {
  const r = mulberry32(seed);
  return Array.from({ length: stages }, () => Math.exp(r() * Math.log(spread)));
}

function costsOf(t: StageTimes, factors: number[], linkMs: number): StageCosts {
  const S = factors.length;
  const base = (s: number) => (s === 0 ? t.first : s === S - 1 ? t.last : t.middle);
  return {
    forwardMs: factors.map((k, s) => base(s).f * k),
    backwardMs: factors.map((k, s) => base(s).b * k),
    linkMs: Array.from({ length: S }, (_, a) => Array.from({ length: S }, (_, b) => (a === b ? 0 : linkMs))),
  };
}

interface Row {
  label: string;
  ratio: number;
  visit: number;
  times: number[];
  searchMs: number[];
  fallbacks: number;
}

/** Mean simulated iteration time of `iterations` iterations of one schedule kind. */
function simulateRuns(kind: 'full' | 'random' | 'collision', o: { S: number; M: number; ratio: number; swap: boolean; iterations: number; seed: number; costs: StageCosts; vacant?: number[] }): Row {
  const rules = skipRules({ nStages: o.S, skipRatio: o.ratio, vacant: o.vacant });
  const vacantNote = o.vacant?.length ? `, stage ${o.vacant.join(',')} vacant` : '';
  const row: Row = { label: (kind === 'full' ? `full${o.swap ? ' (CheckFree+ swaps)' : ''}` : `${kind}${o.swap ? ' + swaps' : ''}`) + vacantNote, ratio: o.ratio, visit: rules.visit, times: [], searchMs: [], fallbacks: 0 };
  let last: number[][] | null = null;
  for (let it = 0; it < o.iterations; it++) {
    const req: ScheduleRequest = { rules, microbatches: o.M, iteration: it, swap: o.swap, seed: o.seed, mustVisit: last ? unvisitedStages(last, rules) : [] };
    const t0 = performance.now();
    let orders: number[][];
    if (kind === 'full') orders = fullSchedule(req);
    else if (kind === 'random') orders = randomSchedule(req);
    else {
      const r = collisionSchedule(req, o.costs);
      orders = r.orders;
      if (r.fallback) row.fallbacks++;
    }
    row.searchMs.push(performance.now() - t0);
    last = orders;
    row.times.push(simulateIteration(orders, o.S, o.costs).makespanMs);
  }
  return row;
}

async function study(o: { seeds: number; steps: number; ratio: number; costs4: StageCosts; M: number }): Promise<void> {
  console.log(`\nHalf-model study (local trainer, tiny preset, 4 stages, ${o.M} microbatches x 2 x seq 64, ${o.steps} steps; half = stages 0,3; skip-trained: --skip-ratio ${o.ratio} random schedule)`);
  const rows: string[][] = [];
  const itMs = (ratio: number) => {
    const r = simulateRuns(ratio > 0 ? 'random' : 'full', { S: 4, M: o.M, ratio, swap: false, iterations: 10, seed: 1, costs: o.costs4 });
    return mean(r.times);
  };
  const msFull = itMs(0);
  const msSkip = itMs(o.ratio);
  const summary: { kind: string; full: number[]; half: number[] }[] = [
    { kind: 'full paths', full: [], half: [] },
    { kind: 'skip-trained', full: [], half: [] },
  ];
  for (let seed = 1; seed <= o.seeds; seed++) {
    const base = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: o.M, batch: 2, seed: 1000 + seed, steps: o.steps, evalEvery: Math.max(1, Math.floor(o.steps / 8)), evalBatches: 4, swap: false, evalStages: [0, 3] };
    const full = await trainLocal({ ...base });
    const skip = await trainLocal({ ...base, skipRatio: o.ratio, scheduler: 'random' });
    const target = full.finalValLoss;
    const reach = (r: typeof full, ms: number) => {
      const hit = r.valLosses.find((v) => v.step > 0 && v.loss <= target * 1.0000001);
      return hit ? fmt((hit.step * ms) / 1000, 1) : `> ${fmt((o.steps * ms) / 1000, 1)}`;
    };
    for (const [kind, r, ms] of [['full paths', full, msFull], ['skip-trained', skip, msSkip]] as const) {
      const half = r.partialValLosses[r.partialValLosses.length - 1]!.loss;
      summary.find((x) => x.kind === kind)!.full.push(r.finalValLoss);
      summary.find((x) => x.kind === kind)!.half.push(half);
      rows.push([String(1000 + seed), kind, fmt(r.finalValLoss, 4), fmt(half, 4), fmt(Math.exp(half - r.finalValLoss), 3), fmt((o.steps * ms) / 1000, 1), reach(r, ms)]);
    }
  }
  console.log(table(['seed', 'trained with', 'val full', 'val half', 'ppl half/full', 'sim. wall s', 's to full run\'s final loss'], rows));
  for (const s of summary) console.log(`mean over seeds, ${s.kind}: val full ${fmt(mean(s.full), 4)}, val half ${fmt(mean(s.half), 4)}, perplexity half/full ${fmt(Math.exp(mean(s.half) - mean(s.full)), 3)}x`);
  console.log(`(simulated iteration time, tiny 4 stages, same spread: full ${fmt(msFull, 1)} ms, skip ${fmt(msSkip, 1)} ms)`);
}

async function main(): Promise<void> {
  const f = flags(process.argv.slice(2), { times: 'string', stages: 'string', microbatches: 'string', ratios: 'string', iterations: 'string', spread: 'string', 'link-ms': 'string', seed: 'string', batch: 'string', study: 'boolean', seeds: 'string', steps: 'string', 'study-ratio': 'string' });
  const S = Number(f.stages ?? 8);
  const M = Number(f.microbatches ?? 8);
  const ratios = list(f.ratios, ['0.25', '0.33', '0.5']).map(Number);
  const iterations = Number(f.iterations ?? 10);
  const spread = Number(f.spread ?? 3);
  const linkMs = Number(f['link-ms'] ?? 20);
  const seed = Number(f.seed ?? 1);
  const batch = Number(f.batch ?? 4);
  await useNodeBackend('wasm');
  console.log(`bench:skip — SIMULATED iteration time (shared/schedule/skip-timing.ts), measured stage times; ${machine()}`);
  const t = typeof f.times === 'string' ? timesOf(f.times) : await measure('small', S, batch);
  console.log(`small preset, ${S} stages, batch ${batch}: ${typeof f.times === 'string' ? 'given (--times)' : 'measured (wasm)'} forward/backward ms: first ${fmt(t.first.f, 1)}/${fmt(t.first.b, 1)}, middle ${fmt(t.middle.f, 1)}/${fmt(t.middle.b, 1)}, last ${fmt(t.last.f, 1)}/${fmt(t.last.b, 1)}`);
  const factors = spreadOf(S, spread, seed);
  console.log(`volunteer slowness per stage (seed ${seed}, log-uniform in [1, ${spread}]): ${factors.map((x) => fmt(x, 2)).join(' ')}; link ${linkMs} ms per hop; ${M} microbatches, all in flight`);
  const costs = costsOf(t, factors, linkMs);
  const rows: Row[] = [];
  for (const swap of [false, true]) rows.push(simulateRuns('full', { S, M, ratio: 0, swap, iterations, seed, costs }));
  for (const ratio of ratios) {
    for (const kind of ['random', 'collision'] as const) rows.push(simulateRuns(kind, { S, M, ratio, swap: false, iterations, seed, costs }));
    rows.push(simulateRuns('collision', { S, M, ratio, swap: true, iterations, seed, costs }));
  }
  // Train through a vacancy: the slowest intermediate's tab is gone and no volunteer is free (full paths would wait).
  const slowest = costs.forwardMs.slice(1, S - 1).reduce((best, x, i, xs) => (x > xs[best]! ? i : best), 0) + 1;
  if (S >= 3) for (const kind of ['random', 'collision'] as const) rows.push(simulateRuns(kind, { S, M, ratio: ratios[Math.min(1, ratios.length - 1)] ?? 0.33, swap: false, iterations, seed, costs, vacant: [slowest] }));
  const full = mean(rows[0]!.times);
  console.log(
    table(
      ['schedule', 'skip ratio', 'stages/path', 'iteration ms (mean)', 'min', 'max', 'x full', 'search ms (mean)', 'fallbacks'],
      rows.map((r) => [r.label, fmt(r.ratio, 2), String(r.visit), fmt(mean(r.times), 1), fmt(Math.min(...r.times), 1), fmt(Math.max(...r.times), 1), fmt(mean(r.times) / full, 3), fmt(mean(r.searchMs), 1), String(r.fallbacks)]),
    ),
  );
  console.log(`(${iterations} iterations each; 'x full' against the full pipeline without swaps; with a stage vacant, full paths wait for a volunteer: no iteration completes)`);
  if (f.study) {
    const t4 = await measure('tiny', 4, 2);
    await study({ seeds: Number(f.seeds ?? 2), steps: Number(f.steps ?? 40), ratio: Number(f['study-ratio'] ?? 0.25), costs4: costsOf(t4, spreadOf(4, spread, seed), linkMs), M: 4 });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
