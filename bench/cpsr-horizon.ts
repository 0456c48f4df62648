/**
 * Why CPSR's predictor refuses at longer checkpoint intervals (issue 25, docs/cpsr.md): one
 * failure-free in-process run (the local trainer, the swarm's algorithm and seed) keeps the lost
 * stage's weights after every iteration; then, for each interval K and predictor variant, the
 * history a run checkpointing every K would hold at the failure (checkpoints after 1, 1 + K, ...,
 * the newest `capacity`) is fitted, and the fit's held-out error is printed with what matters at a
 * failure: the predicted state's distance to the true one, K/2 and K iterations past the last
 * checkpoint, over the plain restore's (the bound is lifted so that every fit predicts).
 *
 *   npm run bench:cpsr-horizon
 *   npm run bench:cpsr-horizon -- --intervals 2,5,10 --batch 2 --windows 3,4 --chunks 256,1024
 */
import { useNodeBackend } from '../trainer/node-backend.js';
import { runIteration } from '../trainer/pipeline.js';
import { loadDataset } from '../trainer/corpus-file.js';
import { DEFAULT_SETTINGS, modelConfigOf } from '../shared/run-settings.js';
import { Stage } from '../shared/model/stage.js';
import { stageParamSpecs } from '../shared/model/params.js';
import { flattenWeights } from '../shared/recovery/cpsr/flat.js';
import { CheckpointHistory, DEFAULT_HISTORY_LIMITS } from '../shared/recovery/cpsr/history.js';
import { CpsrPredictor, DEFAULT_PREDICTOR, minCheckpoints, type PredictorConfig } from '../shared/recovery/cpsr/predictor.js';
import { relativeDistance } from './cpsr-recovery-cost.js';
import { flags, fmt, list, machine, table } from './util.js';

const f = flags(process.argv.slice(2), { preset: 'string', batch: 'string', microbatches: 'string', stage: 'string', intervals: 'string', windows: 'string', chunks: 'string', checkpoints: 'string' });
const num = (k: string, d: number) => (typeof f[k] === 'string' ? Number(f[k]) : d);
const settings = { ...DEFAULT_SETTINGS, preset: (f.preset as string) ?? 'tiny', stages: 4, microbatches: num('microbatches', 2), batch: num('batch', 2) };
const LOST = num('stage', 2);
const INTERVALS = list(f.intervals, ['2', '5', '10']).map(Number);
const WINDOWS = list(f.windows, [String(DEFAULT_PREDICTOR.window)]).map(Number);
const CHUNKS = list(f.chunks, [String(DEFAULT_PREDICTOR.chunkSize)]).map(Number);
/** Checkpoints each fitted history holds (the failure comes after the last of them). */
const CHECKPOINTS = num('checkpoints', 8);

await useNodeBackend('wasm');
const cfg = modelConfigOf(settings);
const { dataset } = loadDataset({ seqLen: cfg.seqLen });
const specs = stageParamSpecs(cfg, LOST);
const stages = Array.from({ length: settings.stages }, (_, i) => new Stage(cfg, i, { lr: settings.lr }));
// the last checkpoint of the longest interval's history, plus one more interval to look ahead
const maxK = Math.max(...INTERVALS);
const end = 1 + (CHECKPOINTS - 1) * maxK + maxK;
console.log(`CPSR predictor vs interval: preset ${settings.preset}, stage ${LOST} (${specs.reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0)} weights), ${settings.microbatches} x ${settings.batch} sequences/iteration, ${end} iterations; histories of ${CHECKPOINTS} checkpoints; ${machine()}`);
const states: Float32Array[] = []; // states[i]: after i iterations
states.push(flattenWeights(stages[LOST]!.getWeights(), specs));
const t0 = performance.now();
for (let it = 0; it < end; it++) {
  runIteration(stages, Array.from({ length: settings.microbatches }, (_, mb) => dataset.trainBatch(settings.seed, it, mb, settings.batch)), { swap: false, iteration: it });
  states.push(flattenWeights(stages[LOST]!.getWeights(), specs));
}
stages.forEach((s) => s.dispose());
console.log(`trained in ${fmt((performance.now() - t0) / 1000, 0)} s\n`);

const rows: (string | number)[][] = [];
for (const K of INTERVALS) {
  // a run checkpointing after 1, 1 + K, ...: the failure comes after the CHECKPOINTS-th checkpoint
  const its = Array.from({ length: CHECKPOINTS }, (_, n) => 1 + n * K);
  const last = its[its.length - 1]!;
  for (const window of WINDOWS) {
    for (const chunkSize of CHUNKS) {
      const config: PredictorConfig = { ...DEFAULT_PREDICTOR, window, chunkSize, maxErrorRatio: 1e9 };
      if (CHECKPOINTS < minCheckpoints(config)) continue;
      const history = new CheckpointHistory({ ...DEFAULT_HISTORY_LIMITS, capacity: CHECKPOINTS });
      for (const i of its) history.add(i, states[i]!);
      const p = new CpsrPredictor(config);
      const fit = p.fit(history);
      const at = (h: number) => {
        const pr = p.predict(history, last + h);
        return pr.predicted ? relativeDistance(pr.state, states[last + h]!) / relativeDistance(states[last]!, states[last + h]!) : NaN;
      };
      const half = Math.max(1, Math.round(K / 2));
      rows.push([K, window, chunkSize, fmt(fit.valRatio ?? NaN, 3), fmt(fit.linearRatio ?? NaN, 3), fmt(at(half), 3), fmt(at(K), 3), fmt(relativeDistance(states[last]!, states[last + half]!), 5), fmt(fit.seconds, 1)]);
      console.log(`  K ${K}, window ${window}, chunk ${chunkSize}: held-out ${fmt(fit.valRatio ?? NaN, 3)}${fit.usable ? '' : ` (${fit.reason})`}`);
      p.dispose();
    }
  }
}
console.log('');
console.log(table(['K', 'window', 'chunk', 'held-out', 'linear', `dist@K/2`, 'dist@K', 'plain@K/2', 'fit s'], rows));
console.log('held-out: the fit\'s held-out error over the plain restore\'s (the bound is 0.9); linear: plain linear extrapolation of the denoised history, the same ratio;');
console.log('dist@h: ||predicted - true|| / ||checkpoint - true|| h iterations past the last checkpoint (< 1: the prediction is closer); plain@K/2: ||checkpoint - true|| / ||true||');
process.exit(0);
