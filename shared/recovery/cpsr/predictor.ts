/**
 * CPSR's task-level predictor for one stage: learns from the stage's own checkpoint history how
 * its parameters move, and moves the last checkpoint forward to the iteration a failure struck.
 *
 *   fit(history)        denoise windows (fdd.ts), build chunk-normalised samples (windows.ts),
 *                       train the VITP (vitp.ts) on every window whose target is not the newest
 *                       checkpoint, measure the error on the held-out newest ones, then fine-tune
 *                       on all of them. The outcome says whether prediction may be used.
 *   predict(history, t) the last checkpoint moved forward to iteration t, or the last checkpoint
 *                       itself with the reason (too little history, validation error above the
 *                       bound, no fit on this history within the last maxFitAge checkpoints).
 *
 * The validation error is a ratio: the squared error of the predicted displacement over the
 * squared displacement itself, i.e. over the plain restore's error (which predicts no move).
 * Below 1 the predictor beats the plain restore on checkpoints it did not train on.
 *
 * Memory: the history (history.ts bound) + the samples (samplesPerPair x pairs x ~20 floats,
 * 0.5 MB at the defaults) + the model (~2 k floats) + one inference batch (inferBatch x ~20
 * floats, 5 MB): under 200 MB with the default history bound.
 */
import { mulberry32 } from '../../model/rng.js';
import type { CheckpointHistory } from './history.js';
import { CpsrError } from './errors.js';
import { DEFAULT_FDD, type FddOptions } from './fdd.js';
import { Vitp } from './vitp.js';
import { featureRows, targetRows, valueFeatureCount, windowBasis, windowPairs, type FeatureRows, type WindowPair } from './windows.js';

export interface PredictorConfig {
  /** Checkpoints per input window (>= 2). */
  window: number;
  /** Train on targets 1 .. horizons checkpoints after a window (varied horizons for the time embedding). */
  horizons: number;
  /** Parameters per chunk (one scale per chunk). */
  chunkSize: number;
  /** Parameters sampled per (window, target) pair for training. */
  samplesPerPair: number;
  /** Parameters sampled per held-out pair for the validation error (all when the stage is smaller). */
  valSamples: number;
  hidden: number;
  timeDim: number;
  steps: number;
  /** Steps on all pairs (the held-out ones included) after validation. */
  finetuneSteps: number;
  batch: number;
  lr: number;
  fdd: FddOptions;
  /** Validation error ratio (vs the plain restore) above which prediction is refused. */
  maxErrorRatio: number;
  /** Rows per inference batch. */
  inferBatch: number;
  /**
   * A fit may serve this many checkpoints after the one it was fitted on (the model is a function
   * of the latest window, so it stays valid while the dynamics do; refitting at every checkpoint
   * costs more than the few-percent overhead budget on small runs).
   */
  maxFitAge: number;
  seed: number;
}

export const DEFAULT_PREDICTOR: PredictorConfig = {
  window: 4,
  horizons: 2,
  chunkSize: 256,
  samplesPerPair: 1024,
  valSamples: 16384,
  hidden: 32,
  timeDim: 8,
  steps: 100,
  finetuneSteps: 30,
  batch: 256,
  lr: 1e-2,
  fdd: DEFAULT_FDD,
  maxErrorRatio: 0.9,
  inferBatch: 65536,
  maxFitAge: 3,
  seed: 1234,
};

/** Checkpoints needed before the predictor can fit: one window, one training target, one held-out target. */
export const minCheckpoints = (c: Pick<PredictorConfig, 'window'>) => c.window + 2;

export type FitOutcome =
  | { usable: true; valRatio: number; valMse: number; linearRatio: number; trainLoss: number; samples: number; seconds: number; checkpoints: number; lastIteration: number }
  | { usable: false; reason: string; valRatio: number | null; valMse: number | null; linearRatio: number | null; seconds: number; checkpoints: number; lastIteration: number | null };

export type Prediction =
  | { predicted: true; state: Float32Array; from: number; to: number; horizon: number; valRatio: number }
  | { predicted: false; state: Float32Array; from: number; to: number; horizon: number; reason: string };

export function checkPredictorConfig(c: PredictorConfig): void {
  const int = (name: keyof PredictorConfig, lo: number, hi: number) => {
    const v = c[name] as number;
    if (!Number.isInteger(v) || v < lo || v > hi) throw new CpsrError(`predictor ${name} must be an integer in ${lo}..${hi}, got ${v}`);
  };
  int('window', 2, 64);
  int('horizons', 1, 16);
  int('chunkSize', 1, 1 << 24);
  int('samplesPerPair', 1, 1 << 20);
  int('valSamples', 1, 1 << 22);
  int('hidden', 1, 1024);
  int('timeDim', 1, 256);
  int('steps', 0, 100_000);
  int('finetuneSteps', 0, 100_000);
  int('batch', 1, 1 << 20);
  int('inferBatch', 1, 1 << 22);
  int('maxFitAge', 0, 1024);
  if (!(c.lr > 0 && c.lr < 1)) throw new CpsrError(`predictor lr must be in (0, 1), got ${c.lr}`);
  if (!(c.maxErrorRatio > 0)) throw new CpsrError(`predictor maxErrorRatio must be > 0, got ${c.maxErrorRatio}`);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export class CpsrPredictor {
  private model: Vitp | null = null;
  private fitted: FitOutcome | null = null;
  /** Time unit of the fitted model (iterations): the median interval of the history it saw. */
  private unit = 1;

  constructor(readonly config: PredictorConfig = DEFAULT_PREDICTOR) {
    checkPredictorConfig(config);
  }

  /** The last fit's outcome (null before the first). */
  get last(): FitOutcome | null {
    return this.fitted;
  }

  /** Trains a fresh model on `history` (the previous one is dropped) and says whether it may predict. */
  fit(history: CheckpointHistory): FitOutcome {
    const t0 = performance.now();
    const c = this.config;
    const k = history.size;
    const base = { checkpoints: k, lastIteration: history.last?.iteration ?? null };
    this.model?.dispose();
    this.model = null;
    if (k < minCheckpoints(c)) {
      return (this.fitted = { usable: false, reason: `too little history: ${k} checkpoint(s), the predictor needs ${minCheckpoints(c)}`, valRatio: null, valMse: null, linearRatio: null, seconds: 0, ...base });
    }
    const states = history.states;
    const iters = history.iterations;
    this.unit = median(iters.slice(1).map((t, i) => t - iters[i]!));
    const times = iters.map((t) => t / this.unit);
    const rand = mulberry32(c.seed ^ k);
    const n = states[0]!.length;
    const { train, val } = windowPairs(k, c.window, c.horizons);
    const bases = new Map<number, ReturnType<typeof windowBasis>>();
    const basis = (end: number) => bases.get(end) ?? bases.set(end, windowBasis(states, times, end, c.window, c.chunkSize, c.fdd)).get(end)!;
    const sample = (pairs: WindowPair[], per: number) => {
      const parts = pairs.map((p) => {
        const params = per >= n ? Int32Array.from({ length: n }, (_, i) => i) : Int32Array.from({ length: per }, () => Math.floor(rand() * n));
        const rows = featureRows(states, basis(p.end), times[p.target]! - times[p.end]!, params);
        return { rows, y: targetRows(states, p, rows, params), params, pair: p };
      });
      return parts;
    };
    const trainParts = sample(train, c.samplesPerPair);
    const valParts = sample(val, c.valSamples);
    const model = new Vitp({ window: c.window, hidden: c.hidden, timeDim: c.timeDim }, c.seed);
    const trainLoss = model.train(concatRows(trainParts.map((p) => p.rows)), concatY(trainParts.map((p) => p.y)), { steps: c.steps, batch: c.batch, lr: c.lr, rand });
    // Held-out error in raw units, against the plain restore (no move) and plain linear extrapolation.
    let se = 0;
    let seLin = 0;
    let ref = 0;
    let rows = 0;
    for (const p of valParts) {
      rows += p.rows.n;
      const pred = model.predict(p.rows);
      const fv = valueFeatureCount(c.window);
      for (let r = 0; r < p.rows.n; r++) {
        const s = p.rows.scale[r]!;
        const truth = p.y[r]! * s;
        se += (pred[r]! * s - truth) ** 2;
        seLin += (p.rows.value[r * fv + c.window - 1]! * p.rows.h[r]! * s - truth) ** 2;
        ref += truth * truth;
      }
    }
    const valRatio = ref > 0 ? se / ref : se > 0 ? Infinity : 0;
    const linearRatio = ref > 0 ? seLin / ref : 0;
    // The planner's predictor loss (slides eq. 8): mean squared error per parameter, raw units.
    const valMse = rows > 0 ? se / rows : 0;
    if (!Number.isFinite(trainLoss) || !(valRatio <= c.maxErrorRatio)) {
      model.dispose();
      const reason = !Number.isFinite(trainLoss) ? 'the predictor did not train (non-finite loss)' : `validation error ${valRatio.toFixed(3)} of the plain restore's, above the bound ${c.maxErrorRatio}`;
      return (this.fitted = { usable: false, reason, valRatio, valMse, linearRatio, seconds: (performance.now() - t0) / 1000, ...base });
    }
    if (c.finetuneSteps > 0) {
      const all = [...trainParts, ...valParts.map((p) => subsample(p, c.samplesPerPair, rand))];
      model.train(concatRows(all.map((p) => p.rows)), concatY(all.map((p) => p.y)), { steps: c.finetuneSteps, batch: c.batch, lr: c.lr / 3, rand });
    }
    this.model = model;
    const samples = trainParts.reduce((a, p) => a + p.rows.n, 0);
    return (this.fitted = { usable: true, valRatio, valMse, linearRatio, trainLoss, samples, seconds: (performance.now() - t0) / 1000, ...base, lastIteration: iters[k - 1]! });
  }

  /**
   * The stage's state at `iteration`, predicted from the last checkpoint of `history`; the last
   * checkpoint itself (a plain restore) with the reason when prediction is not allowed.
   */
  predict(history: CheckpointHistory, iteration: number): Prediction {
    const last = history.last;
    if (!last) throw new CpsrError('no checkpoint to restore from');
    if (!Number.isSafeInteger(iteration) || iteration < last.iteration) throw new CpsrError(`cannot predict iteration ${iteration} from a checkpoint at ${last.iteration}`);
    const base = { from: last.iteration, to: iteration, horizon: iteration - last.iteration };
    const restore = (reason: string): Prediction => ({ predicted: false, state: last.state.slice(), ...base, reason });
    if (iteration === last.iteration) return restore('the checkpoint is current (nothing to predict)');
    const f = this.fitted;
    if (!f) return restore('the predictor has not been fitted yet');
    if (!f.usable) return restore(f.reason);
    const c = this.config;
    const recent = history.iterations.slice(-(c.maxFitAge + 1));
    if (!this.model || !recent.includes(f.lastIteration!)) return restore(`the predictor was fitted on history up to iteration ${f.lastIteration}, more than ${c.maxFitAge} checkpoint(s) before the last one (${last.iteration})`);
    const states = history.states;
    const times = history.iterations.map((t) => t / this.unit);
    const b = windowBasis(states, times, states.length - 1, c.window, c.chunkSize, c.fdd);
    const h = base.horizon / this.unit;
    const n = last.state.length;
    const out = last.state.slice();
    for (let lo = 0; lo < n; lo += c.inferBatch) {
      const params = Int32Array.from({ length: Math.min(c.inferBatch, n - lo) }, (_, i) => lo + i);
      const rows = featureRows(states, b, h, params);
      const y = this.model.predict(rows);
      for (let r = 0; r < rows.n; r++) out[lo + r] = out[lo + r]! + y[r]! * rows.scale[r]!;
    }
    for (let i = 0; i < n; i++) if (!Number.isFinite(out[i]!)) return restore(`the prediction is not finite at value ${i}`);
    return { predicted: true, state: out, ...base, valRatio: f.valRatio };
  }

  dispose(): void {
    this.model?.dispose();
    this.model = null;
  }
}

function concatRows(parts: FeatureRows[]): FeatureRows {
  const n = parts.reduce((a, p) => a + p.n, 0);
  const fv = parts[0] ? parts[0].value.length / Math.max(parts[0].n, 1) : 0;
  const ft = parts[0] ? parts[0].time.length / Math.max(parts[0].n, 1) : 0;
  const out: FeatureRows = { n, value: new Float32Array(n * fv), time: new Float32Array(n * ft), h: new Float32Array(n), scale: new Float32Array(n) };
  let r = 0;
  for (const p of parts) {
    out.value.set(p.value, r * fv);
    out.time.set(p.time, r * ft);
    out.h.set(p.h, r);
    out.scale.set(p.scale, r);
    r += p.n;
  }
  return out;
}

function concatY(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) out.set(p, (o += p.length) - p.length);
  return out;
}

/** At most `per` random rows of a sampled pair. */
function subsample(p: { rows: FeatureRows; y: Float32Array }, per: number, rand: () => number): { rows: FeatureRows; y: Float32Array } {
  if (p.rows.n <= per) return p;
  const fv = p.rows.value.length / p.rows.n;
  const ft = p.rows.time.length / p.rows.n;
  const pick = Int32Array.from({ length: per }, () => Math.floor(rand() * p.rows.n));
  const rows: FeatureRows = { n: per, value: new Float32Array(per * fv), time: new Float32Array(per * ft), h: new Float32Array(per), scale: new Float32Array(per) };
  const y = new Float32Array(per);
  pick.forEach((src, r) => {
    rows.value.set(p.rows.value.subarray(src * fv, (src + 1) * fv), r * fv);
    rows.time.set(p.rows.time.subarray(src * ft, (src + 1) * ft), r * ft);
    rows.h[r] = p.rows.h[src]!;
    rows.scale[r] = p.rows.scale[src]!;
    y[r] = p.y[src]!;
  });
  return { rows, y };
}

