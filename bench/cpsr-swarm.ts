/**
 * CPSR benchmark on a real Node swarm (issue 25): the coordinator and five Node tabs (one per
 * stage and a spare) in this process, `--recovery` checkpoint / stage-restore / cpsr / checkfree,
 * the same seed, data and checkpoint interval K for all. A failure-free reference run gives the
 * validation loss around every failure; then, for each strategy and each failure point F, a fresh
 * swarm trains to F, pauses, the tab holding --stage is killed, the spare takes the stage and the
 * strategy rebuilds it, and training goes on (--after iterations past F) with the validation loss
 * evaluated at every iteration from F's checkpoint on.
 *
 * Failure points: the checkpoint nearest 25%, 50% and 75% of --budget, plus --horizon iterations
 * (default K/2), so every strategy restores a checkpoint that old (failurePoints). The default
 * budget puts the first failure after 6 checkpoints, the predictor's minimum.
 *
 * cpsr's background fits run between checkpoints in a real run; here, paused at F, the bench asks
 * the fitting worker for a fit of the lost stage on its history up to the last checkpoint and
 * waits for it before the kill (printed: how long, and the fit's held-out error), so the failure
 * finds a current fit, as it would after K iterations of a longer interval.
 *
 *   npm run bench:cpsr-swarm                       (K 10, horizon 5, budget 224, 6 iterations after)
 *   npm run bench:cpsr-swarm -- --every 20 --horizon 10 --after 6 --strategies checkpoint,stage-restore,cpsr,checkfree
 *   npm run bench:cpsr-swarm -- --strategies stage-restore,cpsr --max-error-ratio 1   (cpsr's bound on the held-out error; default 0.9)
 *
 * Each (strategy, failure point) is a fresh swarm trained from scratch to F + after: on 2 shared
 * cores the defaults take about 10 minutes for three strategies.
 *
 * Columns:
 *   horizon     iterations between the restored checkpoint and F (checkpoint, stage-restore, cpsr)
 *   cost it     the issue's recovery cost in iterations: iterations executed after the failure until
 *               the run is back on the failure-free curve, i.e. the first iteration i >= F (nothing
 *               left to recompute) whose validation loss <= ref(i) * (1 + tol); a rollback's
 *               recomputed iterations count. Without a rollback the floor is 1 (the first
 *               evaluation is at F + 1). Not back within --after: after + 1 (marked *)
 *   cost s      wall clock from the kill to that iteration's end (replacement, rebuild, recomputation)
 *   lag it      the finer measure (meanLag): how far behind the failure-free curve the run is over
 *               F + 1 .. F + after, in iterations of that curve (gap over its local descent per
 *               iteration); noisy at the scale of the curve's own wiggle (tol)
 *   fine it     recomputed iterations + lag: the cost without the loss measure's floor
 *   gap@first   validation loss at the first evaluation after the failure at or past F (F after a
 *               rollback, F + 1 otherwise) minus the reference's there
 *   dist        ||rebuilt - lost|| / ||lost|| of the lost stage's weights, read from the tabs
 *   vs restore  that distance over stage-restore's at the same F
 *
 * tol ("back on the curve"): twice the RMS relative deviation of the reference's validation loss
 * from its own centred 5-point moving average over the iterations the forks observe (the
 * evaluation-to-evaluation noise of the failure-free curve), at least --min-tol.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Coordinator, DEFAULT_COORDINATOR } from '../coordinator/server.js';
import { startNodeVolunteer, type NodeVolunteer } from '../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RecoveryStrategy, type RunSettings } from '../shared/run-settings.js';
import { until } from '../testing/until.js';
import type { CpsrStrategy } from '../coordinator/recovery/cpsr-strategy.js';
import { DEFAULT_PREDICTOR, minCheckpoints } from '../shared/recovery/cpsr/predictor.js';
import { flags, fmt, list, machine, mean, table } from './util.js';
import { backOnCurve, curveTolerance, failurePoints, meanLag, relativeDistance } from './cpsr-recovery-cost.js';

const f = flags(process.argv.slice(2), { preset: 'string', budget: 'string', every: 'string', horizon: 'string', after: 'string', stage: 'string', strategies: 'string', 'min-tol': 'string', 'eval-batches': 'string', 'max-error-ratio': 'string' });
const num = (k: string, d: number) => (typeof f[k] === 'string' ? Number(f[k]) : d);
const preset = (f.preset as string) ?? 'tiny';
const EVERY = num('every', 10);
const HORIZON = num('horizon', Math.floor(EVERY / 2));
const NEEDED = minCheckpoints(DEFAULT_PREDICTOR);
// the first failure (25%) after NEEDED checkpoints: checkpoint 1 + (NEEDED - 1) K, plus the horizon
const BUDGET = num('budget', 4 * (1 + (NEEDED - 1) * EVERY + HORIZON));
const AFTER = num('after', 6);
const LOST = num('stage', 2);
const MIN_TOL = num('min-tol', 0.002);
const STRATEGIES = list(f.strategies, ['checkpoint', 'stage-restore', 'cpsr', 'checkfree']) as RecoveryStrategy[];
const POINTS = failurePoints(BUDGET, EVERY, HORIZON);
const FAILURES = POINTS.map((p) => p.failure);
const END = Math.max(...FAILURES) + AFTER;
// the reference evaluates around each failure (5-point neighbourhoods for tol, the slope for the lag)
const SPAN = (F: number) => Array.from({ length: AFTER + 7 }, (_, k) => F - 4 + k);
const refEvaluates = new Set(FAILURES.flatMap(SPAN));
const settings = (recovery: RecoveryStrategy): RunSettings => ({ ...DEFAULT_SETTINGS, preset, stages: 4, microbatches: 2, batch: 2, recovery });

interface Swarm {
  coord: Coordinator;
  vols: NodeVolunteer[];
  dir: string;
  /** iteration -> validation loss, and the wall clock (ms) at its end. */
  val: Map<number, { loss: number; at: number }>;
  seconds: number[];
}

/** Evaluates the validation loss after iteration i only where evaluate(i) (evaluations cost as much as an iteration on tiny). */
async function start(recovery: RecoveryStrategy, maxIterations: number, spare: boolean, evaluate: (i: number) => boolean): Promise<Swarm> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-cpsr-swarm-'));
  const coord = new Coordinator({
    ...DEFAULT_COORDINATOR,
    maxReplicas: 1,
    settings: settings(recovery),
    port: 0,
    silent: true,
    evalEvery: evaluate(1) ? 1 : 0,
    evalBatches: num('eval-batches', DEFAULT_COORDINATOR.evalBatches),
    graceMs: 300,
    maxIterations,
    clientDir: '/nonexistent',
    recovery: { ...DEFAULT_COORDINATOR.recovery, checkpointEvery: EVERY, checkpointDir: dir, ...(typeof f['max-error-ratio'] === 'string' ? { cpsrMaxErrorRatio: Number(f['max-error-ratio']) } : {}) },
  });
  const s: Swarm = { coord, vols: [], dir, val: new Map(), seconds: [] };
  coord.scheduler.observe((r) => {
    if (r.valLoss !== null) s.val.set(r.iteration, { loss: r.valLoss, at: Date.now() });
    s.seconds.push(r.seconds);
    // the scheduler reads evalEvery after each iteration's pass: set it for the next one (after a rollback, the checkpoint's)
    coord.scheduler.opts.evalEvery = evaluate(r.iteration + 1) ? 1 : 0;
  });
  const url = await coord.listen();
  for (let i = 0; i < (spare ? 5 : 4); i++) s.vols.push(await startNodeVolunteer(url, { name: `b${i}` }));
  return s;
}

async function stop(s: Swarm): Promise<void> {
  for (const v of s.vols) v.kill();
  await s.coord.close();
  rmSync(s.dir, { recursive: true, force: true });
}

const volunteerOf = (s: Swarm, stage: number) => {
  const id = s.coord.stages.owner(stage)!.id;
  return s.vols.find((v) => v.status().volunteerId === id)!;
};
const weightsOf = (s: Swarm, stage: number): Float32Array => {
  const ws = Object.values(volunteerOf(s, stage).agent.currentStage!.getWeights());
  const out = new Float32Array(ws.reduce((n, w) => n + w.length, 0));
  let o = 0;
  for (const w of ws) out.set(w, (o += w.length) - w.length);
  return out;
};

console.log(`CPSR swarm benchmark: preset ${preset} (Node tabs in one process on ${machine()}), 4 stages + 1 spare, 2 microbatches x 2 sequences`);
console.log(`budget ${BUDGET} iterations, checkpoint every ${EVERY} (all strategies), stage ${LOST} lost at ${POINTS.map((p) => `${p.failure} (${HORIZON} after the checkpoint at ${p.checkpoint}, the run's ${p.checkpoints}th)`).join(', ')}, ${AFTER} iterations observed after each; strategies ${STRATEGIES.join(', ')}${typeof f['max-error-ratio'] === 'string' ? `; cpsr's bound on the held-out error ${f['max-error-ratio']} (default ${DEFAULT_PREDICTOR.maxErrorRatio})` : ''}`);
if (STRATEGIES.includes('cpsr') && POINTS[0]!.checkpoints < NEEDED) console.log(`  note: the first failure comes after ${POINTS[0]!.checkpoints} checkpoints; the predictor needs ${NEEDED}, so cpsr is the plain restore there`);

// ---- failure-free reference ----
const t0 = Date.now();
const ref = await start('stage-restore', END, false, (i) => refEvaluates.has(i));
await until(() => ref.coord.scheduler.iteration >= END && ref.val.has(END), `reference: ${END} iterations`, 1_800_000);
const refLoss = (i: number) => ref.val.get(i)?.loss ?? NaN;
const refIterS = mean(ref.seconds.filter((_, k) => !refEvaluates.has(k + 1)).slice(2));
await stop(ref);
const observed = FAILURES.flatMap((F) => Array.from({ length: AFTER + 1 }, (_, k) => F + k));
const tol = Math.max(MIN_TOL, curveTolerance(Array.from({ length: END + 1 }, (_, i) => refLoss(i)), observed));
const slopes = FAILURES.map((F) => meanLag({ failure: F, after: AFTER, span: SPAN(F), loss: refLoss, ref: refLoss }).slope);
console.log(`reference: val loss ${fmt(refLoss(FAILURES[0]!), 3)} at ${FAILURES[0]} -> ${fmt(refLoss(END), 3)} at ${END}, ${fmt(refIterS, 3)} s/iteration (without evaluation), ${fmt((Date.now() - t0) / 1000, 0)} s; tol ${fmt(100 * tol, 2)}%; descent per iteration around the failures ${slopes.map((x) => fmt(-x, 4)).join(', ')}\n`);

interface Row {
  F: number;
  strategy: RecoveryStrategy;
  horizon: string;
  cost: number;
  back: boolean;
  seconds: number;
  gap0: number;
  lag: number;
  fine: number;
  dist: number;
  relDist: number;
  note: string;
  iterS: number;
  fitSeconds: number;
}
const rows: Row[] = [];
for (const F of FAILURES) {
  for (const strategy of STRATEGIES) {
    const ck = POINTS.find((p) => p.failure === F)!.checkpoint;
    const s = await start(strategy, F + AFTER, true, (i) => i > ck);
    try {
      const paused = s.coord.scheduler.observe((r) => {
        if (r.iteration === F) s.coord.scheduler.setPaused(true);
      });
      await until(() => s.coord.scheduler.state === 'paused' && s.coord.scheduler.iteration === F, `${strategy}: pause at ${F}`, 1_800_000);
      paused();
      const fitter = strategy === 'cpsr' ? (s.coord.recovery.strategy as CpsrStrategy).fitter : null;
      let fitNote = '';
      if (fitter) {
        // a real run fits between checkpoints; here the lost stage's fit on its history up to the last checkpoint is waited for
        const w0 = Date.now();
        await fitter.idle();
        await fitter.fitInBackground([LOST], POINTS.find((p) => p.failure === F)!.checkpoints);
        const fit = fitter.fits.get(LOST)?.outcome;
        fitNote = fit
          ? `waited ${fmt((Date.now() - w0) / 1000, 1)} s for the fit of stage ${LOST} on ${fit.checkpoints} checkpoints up to iteration ${fit.lastIteration} (${fit.lastIteration === ck ? 'the latest' : `NOT the latest, ${ck}`}): ${fit.usable ? `usable, held-out error ${fmt(fit.valRatio, 3)} of the plain restore's` : `not usable (${fit.reason})`}`
          : `no fit of stage ${LOST} (${fitter.lastFailure ?? 'none finished'})`;
        console.log(`  fail@${F} cpsr: ${fitNote}`);
      }
      const lost = weightsOf(s, LOST);
      const old = s.coord.stages.owner(LOST)!.id;
      const killedAt = Date.now();
      volunteerOf(s, LOST).kill();
      await until(() => s.coord.stages.owner(LOST) !== undefined && s.coord.stages.owner(LOST)!.id !== old, 'the spare takes the stage', 120_000);
      // the spare's stage is built with the strategy's state (checkpoint, prediction, average)
      await until(() => volunteerOf(s, LOST).agent.currentStage?.index === LOST, 'the stage rebuilt', 120_000);
      const rebuilt = weightsOf(s, LOST);
      const itersBefore = s.seconds.length;
      s.coord.scheduler.setPaused(false);
      await until(() => s.coord.scheduler.iteration >= F + AFTER && s.val.has(F + AFTER), `${strategy}: ${F + AFTER} iterations`, 1_800_000);
      // recovery events close after the next iteration
      const ev = s.coord.recovery.done.find((e) => e.stage === LOST && e.rung === 'strategy') ?? s.coord.recovery.done.find((e) => e.stage === LOST)!;
      const resumeAt = Math.min(F, ...[...s.val.keys()].filter((i) => s.val.get(i)!.at >= killedAt).map((i) => i - 1)); // < F after a rollback
      const curve = new Map([...s.val].filter(([i, v]) => v.at >= killedAt).map(([i, v]) => [i, v]));
      const b = backOnCurve({ failure: F, resumeAt, after: AFTER, tol, loss: (i) => curve.get(i)?.loss ?? NaN, ref: refLoss });
      const backAt = b.iteration === null ? null : curve.get(b.iteration)!.at;
      const horizon = ev.notes.map((n) => /horizon (\d+)/.exec(n)?.[1]).find((x) => x !== undefined) ?? (strategy === 'checkpoint' ? String(F - resumeAt) : '-');
      const lag = meanLag({ failure: F, after: AFTER, span: SPAN(F), loss: (i) => curve.get(i)?.loss ?? NaN, ref: refLoss }).lag;
      rows.push({
        F,
        strategy,
        horizon,
        cost: b.cost,
        back: b.iteration !== null,
        seconds: backAt === null ? NaN : (backAt - killedAt) / 1000,
        gap0: ((first) => (curve.get(first)?.loss ?? NaN) - refLoss(first))(resumeAt < F ? F : F + 1),
        lag,
        fine: F - resumeAt + lag,
        dist: relativeDistance(rebuilt, lost),
        relDist: NaN,
        note: `${ev.method}${ev.fallback ? ' (fallback)' : ''}: ${ev.notes.join('; ')}`,
        iterS: mean(s.seconds.slice(2, itersBefore)),
        fitSeconds: fitter?.fitSeconds ?? 0,
      });
      console.log(`  fail@${F} ${strategy}: cost ${b.cost} it${b.iteration === null ? ' (not back)' : ''}, ${fmt(rows[rows.length - 1]!.seconds, 1)} s; ${rows[rows.length - 1]!.note}`);
    } finally {
      await stop(s);
    }
  }
  // the plain restore's state is the checkpoint's, which a rollback also restores: either gives the plain distance
  const plain = rows.find((r) => r.F === F && r.strategy === 'stage-restore')?.dist ?? rows.find((r) => r.F === F && r.strategy === 'checkpoint')?.dist;
  for (const r of rows.filter((r) => r.F === F)) r.relDist = plain === undefined ? NaN : r.dist / plain;
}

console.log('');
console.log(
  table(
    ['fail@', 'strategy', 'horizon', 'cost it', 'cost s', 'lag it', 'fine it', 'gap@first', 'dist', 'vs restore'],
    rows.map((r) => [r.F, r.strategy, r.horizon, `${r.cost}${r.back ? '' : '*'}`, fmt(r.seconds, 1), fmt(r.lag, 2), fmt(r.fine, 2), fmt(r.gap0, 4), fmt(r.dist, 5), fmt(r.relDist, 3)]),
  ),
);
type Measure = 'cost' | 'seconds' | 'fine' | 'relDist';
const avg = (s: RecoveryStrategy, k: Measure) => mean(rows.filter((r) => r.strategy === s).map((r) => r[k]));
const vsOf = (s: RecoveryStrategy, k: Measure, base: RecoveryStrategy) => (s === base || !STRATEGIES.includes(base) ? '' : ` (${fmt((100 * (avg(s, k) - avg(base, k))) / avg(base, k), 1)}% vs ${base})`);
console.log(`\nmean recovery cost over the three failure points (checkpoint every ${EVERY}, horizon ${HORIZON}):`);
for (const s of STRATEGIES) {
  console.log(`  ${s.padEnd(14)} ${fmt(avg(s, 'cost'), 2)} it${vsOf(s, 'cost', 'checkpoint')}, ${fmt(avg(s, 'seconds'), 1)} s${vsOf(s, 'seconds', 'checkpoint')}; fine ${fmt(avg(s, 'fine'), 2)} it${vsOf(s, 'fine', 'checkpoint')}`);
}
if (STRATEGIES.includes('cpsr') && (STRATEGIES.includes('stage-restore') || STRATEGIES.includes('checkpoint'))) {
  console.log(`predicted vs plain restore, distance to the lost stage: ${rows.filter((r) => r.strategy === 'cpsr').map((r) => `${fmt(r.relDist, 3)} at ${r.F}`).join(', ')} (mean ${fmt(avg('cpsr', 'relDist'), 3)}; < 1: the prediction is closer)`);
}
if (STRATEGIES.includes('cpsr') && STRATEGIES.includes('stage-restore')) {
  const c = rows.filter((r) => r.strategy === 'cpsr');
  const sr = mean(rows.filter((r) => r.strategy === 'stage-restore').map((r) => r.iterS));
  const cp = mean(c.map((r) => r.iterS));
  console.log(
    `\npredictor overhead (before the failure, same machine): cpsr ${fmt(cp, 3)} s/iteration vs stage-restore ${fmt(sr, 3)} (${fmt(100 * (cp / sr - 1), 1)}%); ` +
      `worker fitting ${c.map((r) => fmt(r.fitSeconds, 1)).join(', ')} s in the runs failing at ${c.map((r) => r.F).join(', ')} (the tabs share this process's cores with the worker: an upper bound)`,
  );
}
process.exit(0);
