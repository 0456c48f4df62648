/**
 * CPSR benchmark (issue 25; the CPSR slides' evaluation on our model, in one process with the
 * local trainer): a failure-free reference run with checkpoints every --interval iterations; at
 * 25%, 50% and 75% of the --budget one intermediate stage (--stage) is lost, and the run is
 * forked four ways from the same state and the same batches:
 *
 *   rollback       the checkpoint baseline: every stage back to the last checkpoint, recompute
 *   stage-restore  only the lost stage from its last checkpoint (weights + Adam), no prediction
 *   cpsr           the same, its weights moved forward by the stage's predictor
 *   checkfree      the lost stage = the neighbours' average (fresh Adam at 1.1 lr)
 *
 *   npm run bench:cpsr
 *   npm run bench:cpsr -- --budget 200 --interval 8 --after 15 --tol 0.005 --refit-every 2
 *
 * Columns:
 *   lag it     progress lost at the failure, in iterations of the failure-free run: the
 *              validation loss just after recovery equals the reference's this many iterations
 *              earlier (rollback: exactly the iterations since the checkpoint)
 *   cost it    recovery cost: iterations until the validation loss is back on the failure-free
 *              curve (within --tol, relative), counting a rollback's recomputed iterations
 *   cost s     cost it x the measured mean iteration time (+ the prediction's own time for cpsr)
 *   gap@F      validation loss just after recovery minus the reference's at the failure
 *   gap+k      mean validation gap over the --after iterations that follow
 *   dist       ||rebuilt - lost|| / ||lost|| for the lost stage's weights
 *   vs restore that distance over the plain restore's (< 1: closer to the lost state)
 */
import { useNodeBackend } from '../trainer/node-backend.js';
import { evaluate, runIteration } from '../trainer/pipeline.js';
import { loadDataset } from '../trainer/corpus-file.js';
import { DEFAULT_SETTINGS, modelConfigOf } from '../shared/run-settings.js';
import { Stage } from '../shared/model/stage.js';
import { stageParamSpecs } from '../shared/model/params.js';
import { flattenWeights } from '../shared/recovery/cpsr/flat.js';
import { DEFAULT_PREDICTOR } from '../shared/recovery/cpsr/predictor.js';
import { LocalCpsr, type LocalCpsrEvent } from '../experiments/local-cpsr.js';
import { recoverLocally } from '../experiments/local-recovery.js';
import { restoreStage, snapshotStage, type StageSnapshot } from '../experiments/stage-snapshot.js';
import { flags, fmt, machine, mean, table } from './util.js';

const STRATEGIES = ['rollback', 'stage-restore', 'cpsr', 'checkfree'] as const;
type Strategy = (typeof STRATEGIES)[number];

const f = flags(process.argv.slice(2), {
  preset: 'string',
  budget: 'string',
  interval: 'string',
  stage: 'string',
  after: 'string',
  tol: 'string',
  microbatches: 'string',
  batch: 'string',
  'eval-batches': 'string',
  seed: 'string',
  backend: 'string',
  'refit-every': 'string',
});
const num = (k: string, d: number) => (typeof f[k] === 'string' ? Number(f[k]) : d);
const settings = { ...DEFAULT_SETTINGS, preset: (f.preset as string) ?? 'tiny', stages: 4, microbatches: num('microbatches', 2), batch: num('batch', 4), seed: num('seed', DEFAULT_SETTINGS.seed) };
const BUDGET = num('budget', 200);
const INTERVAL = num('interval', 8);
const LOST = num('stage', 1);
const AFTER = num('after', 15);
const TOL = num('tol', 0.005);
const FAILURES = [0.25, 0.5, 0.75].map((p) => Math.round(p * BUDGET));

await useNodeBackend((f.backend as string) ?? 'wasm');
const cfg = modelConfigOf(settings);
const { dataset } = loadDataset({ seqLen: cfg.seqLen });
const val = dataset.valBatches(num('eval-batches', 2), settings.batch);
const batchesOf = (it: number) => Array.from({ length: settings.microbatches }, (_, mb) => dataset.trainBatch(settings.seed, it, mb, settings.batch));
const specs = stageParamSpecs(cfg, LOST);
const flat = (s: Stage) => flattenWeights(s.getWeights(), specs);

console.log(`CPSR benchmark: preset ${settings.preset} (d_model ${cfg.dModel}, ${cfg.nLayers} layers, ${settings.stages} stages, stage ${LOST}: ${flat.length === 0 ? 0 : specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0)} weights), ${settings.microbatches} x ${settings.batch} x ${cfg.seqLen} tokens/iteration`);
console.log(`budget ${BUDGET} iterations, checkpoint every ${INTERVAL}, failures at ${FAILURES.join(', ')}, ${AFTER} iterations observed after each, tolerance ${TOL * 100}%`);
console.log(machine());

// ---- failure-free reference, with checkpoints and the forks' starting states ----
const stages = Array.from({ length: settings.stages }, (_, i) => new Stage(cfg, i, { lr: settings.lr }));
const REFIT = num('refit-every', 2);
const cpsr = new LocalCpsr(cfg, settings.stages, { interval: INTERVAL, refitEvery: REFIT, fitStages: [LOST] });
const ref: number[] = [evaluate(stages, val)];
const iterSeconds: number[] = [];
const ckSeconds: number[] = [];
const forks = new Map<number, { snaps: StageSnapshot[]; cpsr: LocalCpsr; lost: Float32Array }>();
const tick = () => performance.now() / 1000;
cpsr.maybeCheckpoint(stages, 0);
const end = Math.max(...FAILURES) + AFTER;
for (let it = 0; it < end; it++) {
  if (FAILURES.includes(it)) forks.set(it, { snaps: stages.map(snapshotStage), cpsr: cpsr.clone(), lost: flat(stages[LOST]!) });
  const t0 = tick();
  runIteration(stages, batchesOf(it), { swap: false, iteration: it });
  iterSeconds.push(tick() - t0);
  const t1 = tick();
  const fitsBefore = cpsr.fits.length;
  if (cpsr.maybeCheckpoint(stages, it + 1)) ckSeconds.push(tick() - t1 - cpsr.fits.slice(fitsBefore).reduce((a, x) => a + x.outcome.seconds, 0));
  ref.push(evaluate(stages, val));
}
stages.forEach((s) => s.dispose());
const iterS = mean(iterSeconds);
const trainSeconds = iterSeconds.reduce((a, x) => a + x, 0);
console.log(`reference: val loss ${fmt(ref[0]!, 3)} -> ${fmt(ref[end]!, 3)} over ${end} iterations; ${fmt(iterS, 3)} s/iteration; a checkpoint (in-memory snapshot) ${fmt(mean(ckSeconds) * 1000, 1)} ms\n`);

/** Progress lost: F minus the first reference iteration whose loss is <= `loss`. */
const lagAt = (F: number, loss: number) => {
  const r = ref.findIndex((l) => l <= loss);
  return r < 0 ? F : Math.max(0, F - r);
};
const norm = (a: Float32Array) => Math.sqrt(a.reduce((s, v) => s + v * v, 0));
const dist = (a: Float32Array, b: Float32Array) => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0));

interface Row {
  F: number;
  strategy: Strategy;
  lag: number;
  cost: number;
  seconds: number;
  gap0: number;
  gapMean: number;
  dist: number;
  relDist: number;
  note: string;
  event?: LocalCpsrEvent;
}
const rows: Row[] = [];

for (const F of FAILURES) {
  const fork = forks.get(F)!;
  let plainDist = NaN;
  for (const strategy of STRATEGIES) {
    const st = fork.snaps.map((s) => restoreStage(cfg, s));
    const c = fork.cpsr.clone();
    let start = F;
    let note = '';
    let extraSeconds = 0;
    let event: LocalCpsrEvent | undefined;
    if (strategy === 'rollback') start = c.rollbackAll(st);
    else if (strategy === 'checkfree') note = recoverLocally(st, LOST, 'checkfree', { lr: settings.lr }).description;
    else {
      const t0 = tick();
      event = c.recover(st, LOST, F, strategy);
      extraSeconds = strategy === 'cpsr' ? tick() - t0 : 0; // the prediction itself (the fit ran after a checkpoint)
      note = event.description;
    }
    const d = dist(flat(st[LOST]!), fork.lost);
    if (strategy === 'stage-restore') plainDist = d;
    const gaps: number[] = [];
    let backAt: number | null = null;
    let lag = NaN;
    for (let it = start; it <= F + AFTER; it++) {
      if (it >= F) {
        const v = evaluate(st, val);
        if (it === F) lag = strategy === 'rollback' ? F - start : lagAt(F, v);
        gaps.push(v - ref[it]!);
        if (backAt === null && v <= ref[it]! * (1 + TOL)) backAt = it;
      }
      if (it < F + AFTER) runIteration(st, batchesOf(it), { swap: false, iteration: it });
    }
    st.forEach((s) => s.dispose());
    const cost = (F - start) + (backAt === null ? AFTER + 1 : backAt - F);
    rows.push({ F, strategy, lag, cost, seconds: cost * iterS + extraSeconds, gap0: gaps[0]!, gapMean: mean(gaps.slice(1)), dist: d / norm(fork.lost), relDist: NaN, note: backAt === null ? `not back within ${AFTER}; ${note}` : note, event });
  }
  for (const r of rows.filter((r) => r.F === F)) r.relDist = (r.dist * norm(fork.lost)) / plainDist;
}

console.log(
  table(
    ['fail@', 'strategy', 'lag it', 'cost it', 'cost s', 'gap@F', 'gap+k', 'dist', 'vs restore'],
    rows.map((r) => [r.F, r.strategy, r.lag, r.cost, fmt(r.seconds, 2), fmt(r.gap0, 4), fmt(r.gapMean, 4), fmt(r.dist, 5), fmt(r.relDist, 3)]),
  ),
);
console.log('');
for (const r of rows.filter((r) => r.strategy === 'cpsr' || r.strategy === 'checkfree')) console.log(`  fail@${r.F} ${r.note}`);
console.log(`\npredictor fits of stage ${LOST} (after every ${REFIT} checkpoint(s); a fit serves ${DEFAULT_PREDICTOR.maxFitAge} more):`);
for (const { iteration, outcome: fit } of cpsr.fits) {
  console.log(`  @${String(iteration).padStart(4)}: ${String(fit.checkpoints).padStart(2)} checkpoints, ${fit.usable ? 'usable' : `not usable (${fit.reason})`}; validation error ${fit.valRatio === null ? '-' : fmt(fit.valRatio, 3)} of the plain restore's (linear extrapolation ${fit.linearRatio === null ? '-' : fmt(fit.linearRatio, 3)}); ${fmt(fit.seconds, 2)} s`);
}
const fitTotal = cpsr.fits.reduce((a, x) => a + x.outcome.seconds, 0);
console.log(`\npredictor overhead: ${fmt(fitTotal, 1)} s of fitting over ${fmt(trainSeconds, 1)} s of training (${end} iterations) = ${fmt((100 * fitTotal) / trainSeconds, 1)}% if it ran on the training thread; a coordinator worker thread on a spare core takes nothing from the tabs`);
cpsr.dispose();
const avg = (s: Strategy) => mean(rows.filter((r) => r.strategy === s).map((r) => r.cost));
console.log('\nmean recovery cost over the three failure points (iterations):');
for (const s of STRATEGIES) console.log(`  ${s.padEnd(14)} ${fmt(avg(s), 2)}${s === 'rollback' ? '' : `  (${fmt((100 * (avg(s) - avg('rollback'))) / avg('rollback'), 1)}% vs rollback)`}`);
console.log(`predictor defaults: window ${DEFAULT_PREDICTOR.window}, horizons ${DEFAULT_PREDICTOR.horizons}, chunk ${DEFAULT_PREDICTOR.chunkSize}, hidden ${DEFAULT_PREDICTOR.hidden}, steps ${DEFAULT_PREDICTOR.steps}+${DEFAULT_PREDICTOR.finetuneSteps}, bound ${DEFAULT_PREDICTOR.maxErrorRatio}`);
