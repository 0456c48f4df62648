/**
 * CPSR benchmark on a real Node swarm (issue 25): the coordinator and five Node tabs (one per
 * stage and a spare) in this process, `--recovery` checkpoint / stage-restore / cpsr / checkfree,
 * the same seed and data for all. A failure-free reference run gives the validation loss at every
 * iteration; then, for each strategy and each failure point F (25%, 50%, 75% of --budget), a fresh
 * swarm trains to F, pauses, the tab holding --stage is killed, the spare takes the stage and the
 * strategy rebuilds it, and training goes on (--after iterations past F) with the validation loss
 * evaluated at every iteration.
 *
 *   npm run bench:cpsr-swarm                       (budget 16, checkpoint every 2, 3 iterations after)
 *   npm run bench:cpsr-swarm -- --budget 24 --every 5 --after 3 --stage 2 --strategies checkpoint,cpsr
 *
 * Keep it short on 2 cores: each (strategy, failure point) is a fresh swarm trained from scratch
 * to F + after (about 8-10 minutes for the defaults at load ~12).
 *
 * Columns:
 *   horizon     iterations between the restored checkpoint and F (checkpoint, stage-restore, cpsr)
 *   cost it     recovery cost in iterations: iterations executed after the failure until the run is
 *               back on the failure-free curve, i.e. the first iteration i >= F (nothing left to
 *               recompute) whose validation loss <= ref(i) * (1 + tol); a rollback's recomputed
 *               iterations count. Not back within --after: after + 1 (marked *)
 *   cost s      wall clock from the kill to that iteration's end (replacement, rebuild, recomputation)
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
import { flags, fmt, list, machine, mean, table } from './util.js';
import { backOnCurve, curveTolerance, relativeDistance } from './cpsr-recovery-cost.js';

const f = flags(process.argv.slice(2), { preset: 'string', budget: 'string', every: 'string', after: 'string', stage: 'string', strategies: 'string', 'min-tol': 'string', 'eval-batches': 'string' });
const num = (k: string, d: number) => (typeof f[k] === 'string' ? Number(f[k]) : d);
const preset = (f.preset as string) ?? 'tiny';
const BUDGET = num('budget', 16);
const EVERY = num('every', 2);
const AFTER = num('after', 3);
const LOST = num('stage', 2);
const MIN_TOL = num('min-tol', 0.002);
const STRATEGIES = list(f.strategies, ['checkpoint', 'stage-restore', 'cpsr', 'checkfree']) as RecoveryStrategy[];
const FAILURES = [0.25, 0.5, 0.75].map((p) => Math.round(p * BUDGET));
const END = Math.max(...FAILURES) + AFTER;
const settings = (recovery: RecoveryStrategy): RunSettings => ({ ...DEFAULT_SETTINGS, preset, stages: 4, microbatches: 2, batch: 2, recovery });

interface Swarm {
  coord: Coordinator;
  vols: NodeVolunteer[];
  dir: string;
  /** iteration -> validation loss, and the wall clock (ms) at its end. */
  val: Map<number, { loss: number; at: number }>;
  seconds: number[];
}

async function start(recovery: RecoveryStrategy, maxIterations: number, spare: boolean): Promise<Swarm> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-cpsr-swarm-'));
  const coord = new Coordinator({
    ...DEFAULT_COORDINATOR,
    maxReplicas: 1,
    settings: settings(recovery),
    port: 0,
    silent: true,
    evalEvery: 1,
    evalBatches: num('eval-batches', DEFAULT_COORDINATOR.evalBatches),
    graceMs: 300,
    maxIterations,
    clientDir: '/nonexistent',
    recovery: { ...DEFAULT_COORDINATOR.recovery, checkpointEvery: EVERY, checkpointDir: dir },
  });
  const s: Swarm = { coord, vols: [], dir, val: new Map(), seconds: [] };
  coord.scheduler.observe((r) => {
    if (r.valLoss !== null) s.val.set(r.iteration, { loss: r.valLoss, at: Date.now() });
    s.seconds.push(r.seconds);
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
console.log(`budget ${BUDGET} iterations, checkpoint every ${EVERY}, stage ${LOST} lost at ${FAILURES.join(', ')}, ${AFTER} iterations observed after each; strategies ${STRATEGIES.join(', ')}`);

// ---- failure-free reference ----
const t0 = Date.now();
const ref = await start('stage-restore', END, false);
await until(() => ref.coord.scheduler.iteration >= END && ref.val.has(END), `reference: ${END} iterations`, 1_800_000);
const refLoss = (i: number) => ref.val.get(i)?.loss ?? NaN;
const refIterS = mean(ref.seconds.slice(2));
await stop(ref);
const observed = FAILURES.flatMap((F) => Array.from({ length: AFTER + 1 }, (_, k) => F + k));
const tol = Math.max(MIN_TOL, curveTolerance(Array.from({ length: END + 1 }, (_, i) => refLoss(i)), observed));
console.log(`reference: val loss ${fmt(refLoss(1), 3)} -> ${fmt(refLoss(END), 3)} over ${END} iterations, ${fmt(refIterS, 3)} s/iteration (with an evaluation each), ${fmt((Date.now() - t0) / 1000, 0)} s; tol ${fmt(100 * tol, 2)}%\n`);

interface Row {
  F: number;
  strategy: RecoveryStrategy;
  horizon: string;
  cost: number;
  back: boolean;
  seconds: number;
  gap0: number;
  dist: number;
  relDist: number;
  note: string;
  iterS: number;
  fitSeconds: number;
}
const rows: Row[] = [];
for (const F of FAILURES) {
  for (const strategy of STRATEGIES) {
    const s = await start(strategy, F + AFTER, true);
    try {
      const paused = s.coord.scheduler.observe((r) => {
        if (r.iteration === F) s.coord.scheduler.setPaused(true);
      });
      await until(() => s.coord.scheduler.state === 'paused' && s.coord.scheduler.iteration === F, `${strategy}: pause at ${F}`, 1_800_000);
      paused();
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
      const fitter = strategy === 'cpsr' ? (s.coord.recovery.strategy as CpsrStrategy).fitter : null;
      rows.push({
        F,
        strategy,
        horizon,
        cost: b.cost,
        back: b.iteration !== null,
        seconds: backAt === null ? NaN : (backAt - killedAt) / 1000,
        gap0: ((first) => (curve.get(first)?.loss ?? NaN) - refLoss(first))(resumeAt < F ? F : F + 1),
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
  const plain = rows.find((r) => r.F === F && r.strategy === 'stage-restore')?.dist;
  for (const r of rows.filter((r) => r.F === F)) r.relDist = plain === undefined ? NaN : r.dist / plain;
}

console.log('');
console.log(
  table(
    ['fail@', 'strategy', 'horizon', 'cost it', 'cost s', 'gap@first', 'dist', 'vs restore'],
    rows.map((r) => [r.F, r.strategy, r.horizon, `${r.cost}${r.back ? '' : '*'}`, fmt(r.seconds, 1), fmt(r.gap0, 4), fmt(r.dist, 5), fmt(r.relDist, 3)]),
  ),
);
const avg = (s: RecoveryStrategy, k: 'cost' | 'seconds') => mean(rows.filter((r) => r.strategy === s).map((r) => r[k]));
console.log('\nmean recovery cost over the three failure points:');
for (const s of STRATEGIES) {
  const vs = (k: 'cost' | 'seconds') => (s === 'checkpoint' || !STRATEGIES.includes('checkpoint') ? '' : ` (${fmt((100 * (avg(s, k) - avg('checkpoint', k))) / avg('checkpoint', k), 1)}% vs checkpoint)`);
  console.log(`  ${s.padEnd(14)} ${fmt(avg(s, 'cost'), 2)} it${vs('cost')}, ${fmt(avg(s, 'seconds'), 1)} s${vs('seconds')}`);
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
