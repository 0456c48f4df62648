/**
 * The churn experiment (issue 6; docs/experiments.md): every requested strategy at every requested
 * hourly failure rate, on the real in-process pipeline, with the modelled swarm wall clock.
 *
 *   1. calibrate: a few failure-free iterations, timed task by task, give the modelled iteration
 *      time T and the checkpoint cost C, hence the Young/Daly interval sqrt(2 C / lambda) per rate
 *   2. plan: a run that never changes the model relative to the failure-free run is derived from the
 *      executed failure-free run with the same path order (see run.ts); the rest are executed
 *   3. execute the failure-free bases the derived runs need, then every other run
 *   4. price every slot (cost-model.ts) with each task's measured seconds, or (default) the median
 *      over every executed iteration with the same path order, so machine noise is not mistaken
 *      for a strategy's cost
 *   5. write results.csv, loss-vs-time-<rate>.svg, summary.md and experiment.json to `out`
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Stage } from '../shared/model/stage.js';
import { loadDataset } from '../trainer/corpus-file.js';
import { runIteration } from '../trainer/pipeline.js';
import { modelConfigOf, checkSettings, RECOVERY_STRATEGIES, type RecoveryStrategy, type RunSettings, usesSwap } from '../shared/run-settings.js';

/** The strategies this experiment simulates: all of them (stage-restore and cpsr through experiments/local-cpsr.ts). */
export const EXPERIMENT_STRATEGIES: readonly RecoveryStrategy[] = RECOVERY_STRATEGIES;
import { AVERAGE_WEIGHTINGS, type AverageWeighting } from '../shared/recovery/average.js';
import { FailureSchedule } from './failures.js';
import { takesCheckpoints } from './checkpointed.js';
import { perIterationProbability } from '../shared/recovery/failure-model.js';
import { checkNetwork, checkpointSeconds, iterationSeconds, checkpointEveryIterations, type CostContext, type ModelBytes, type NetworkModel, type RedundantCost } from './cost-model.js';
import { TaskTimer } from './task-timer.js';
import { medianTiming, type IterationTiming } from './timeline.js';
import { deriveRun, executeRun, isDerivable, modelBytes, type DeriveContext, type RunContext, type RunSpec, type RunTrace, type SlotRecord } from './run.js';
import { costRun, ratePlot, summarize, summaryTables, toCsv, valPoints, type RunResult } from './report.js';

export type ComputeTime = 'median' | 'measured';

export interface ExperimentOptions {
  settings: Omit<RunSettings, 'recovery'>;
  iterations: number;
  /** Hourly failure rates, percent. */
  rates: number[];
  strategies: RecoveryStrategy[];
  evalEvery: number;
  evalBatches: number;
  replicaEvery: number;
  lrScale: number;
  weighting: AverageWeighting;
  failureSeed: number;
  /** Failure-clock seconds per iteration (the time scale of the failure model). */
  iterationSeconds: number;
  network: NetworkModel;
  replacementWaitSeconds: number;
  /** How the redundant baseline pays for its copies (cost-model.ts RedundantCost). */
  redundantCost: RedundantCost;
  checkpointEvery: number | 'auto';
  /** Target validation loss for time-to-target; 'auto': see chooseTarget. */
  targetLoss: number | 'auto';
  computeTime: ComputeTime;
  /** Derive runs that never change the model from the failure-free run (default true). */
  reuse: boolean;
  calibrationIterations: number;
  /** Stop a run after maxSlotsFactor * iterations slots. */
  maxSlotsFactor: number;
  /** Output folder (created); null: write nothing. */
  out: string | null;
  data?: string;
  log?: (line: string) => void;
}

export interface Calibration {
  /** Modelled seconds of one failure-free plain iteration. */
  iterationSeconds: number;
  /** The same, with Bamboo-style redundancy. */
  redundantIterationSeconds: number;
  /** Modelled seconds of one checkpoint (upload of weights + Adam state). */
  checkpointSeconds: number;
  /** Measured in-process seconds of one iteration (median). */
  measuredSeconds: number;
  /** Checkpoint interval per rate (iterations; null = never). */
  checkpointEvery: Record<string, number | null>;
  /**
   * Which iteration time the Young/Daly interval used: the median of every executed plain
   * iteration (when the checkpoint runs are derived from the failure-free run, i.e. with reuse),
   * or the calibration iterations (checkpoint runs executed, --no-reuse).
   */
  intervalFrom: 'executed iterations' | 'calibration';
  /** The modelled iteration time the interval used. */
  intervalIterationSeconds: number;
}

export interface ExperimentResult {
  runs: RunResult[];
  calibration: Calibration;
  target: number | null;
  files: string[];
}

export function checkExperimentOptions(o: ExperimentOptions): void {
  checkSettings({ ...o.settings, recovery: 'checkfree' });
  const int = (name: string, v: number, min = 1) => {
    if (!Number.isInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${v}`);
  };
  int('iterations', o.iterations);
  int('eval-every', o.evalEvery);
  int('eval-batches', o.evalBatches);
  int('replica-every', o.replicaEvery);
  int('calibration-iterations', o.calibrationIterations);
  int('failure-seed', o.failureSeed, Number.MIN_SAFE_INTEGER);
  if (o.rates.length === 0) throw new RangeError('give at least one rate');
  for (const r of o.rates) if (!(r >= 0 && r <= 100)) throw new RangeError(`rates are percent per hour in [0, 100], got ${r}`);
  if (o.strategies.length === 0) throw new RangeError('give at least one strategy');
  for (const s of o.strategies) {
    if (!RECOVERY_STRATEGIES.includes(s)) throw new RangeError(`unknown strategy "${s}"; choose from ${RECOVERY_STRATEGIES.join(', ')}`);
    if (!EXPERIMENT_STRATEGIES.includes(s)) throw new RangeError(`strategy "${s}" is not simulated by this experiment; npm run bench:cpsr runs it in process, --recovery ${s} in the swarm`);
  }
  if (!AVERAGE_WEIGHTINGS.includes(o.weighting)) throw new RangeError(`unknown weighting "${o.weighting}"`);
  if (!(o.lrScale > 0)) throw new RangeError(`lr-scale must be > 0, got ${o.lrScale}`);
  perIterationProbability(0.5, o.iterationSeconds);
  checkNetwork(o.network);
  if (!(o.replacementWaitSeconds >= 0)) throw new RangeError(`replacement wait must be >= 0 s, got ${o.replacementWaitSeconds}`);
  if (o.checkpointEvery !== 'auto') int('checkpoint-every', o.checkpointEvery);
  if (o.redundantCost !== 'compute' && o.redundantCost !== 'copy') throw new RangeError(`redundant cost must be compute or copy, got "${String(o.redundantCost)}"`);
  if (o.targetLoss !== 'auto' && !(o.targetLoss > 0)) throw new RangeError(`target loss must be > 0, got ${o.targetLoss}`);
  if (!(o.maxSlotsFactor >= 1)) throw new RangeError('maxSlotsFactor must be >= 1');
  if (o.strategies.includes('checkfree+') && o.settings.microbatches % 2 === 1) {
    // The swap counter runs across iterations (shared/schedule/paths.ts), so with an odd M the
    // swapped microbatches change from one iteration to the next; the per-path median timing
    // of this experiment assumes every iteration has the same paths.
    throw new RangeError(`checkfree+ needs an even --microbatches in this experiment, got ${o.settings.microbatches}`);
  }
}

const runName = (s: RunSpec) => `${s.strategy}@${s.rate}`;

/**
 * The target loss when none is given: the validation loss the failure-free plain run reaches at
 * 75% of the iterations (its first evaluation at or after that point), when that run exists;
 * otherwise the median of every run's final validation loss.
 */
export function chooseTarget(runs: RunResult[], plainBase: RunTrace | null, iterations: number): number | null {
  if (plainBase) {
    const at = Math.ceil(0.75 * iterations);
    const p = plainBase.slots.find((s) => s.iteration >= at && s.valLoss !== null);
    if (p?.valLoss != null) return p.valLoss;
  }
  const finals = runs.map((r) => r.summary.finalValLoss).filter(Number.isFinite).sort((a, b) => a - b);
  return finals.length ? finals[finals.length >> 1]! : null;
}

/** Everything the runs produced that pricing needs: written to traces.json, read by --reprice. */
export interface TraceBundle {
  version: 1;
  options: Omit<ExperimentOptions, 'log'>;
  model: { dModel: number; nLayers: number; seqLen: number; bytes: ModelBytes };
  calibration: { timings: IterationTiming[]; measured: number[] };
  /** The executed failure-free runs (plain and CheckFree+ path order) runs were derived from. */
  bases: { plain: RunTrace | null; swap: RunTrace | null };
  /** Every other executed run. */
  executed: RunTrace[];
}

/** Options that change what the runs compute; --reprice keeps them from the bundle. */
export const TRAJECTORY_OPTIONS = [
  'settings',
  'iterations',
  'rates',
  'strategies',
  'evalEvery',
  'evalBatches',
  'replicaEvery',
  'lrScale',
  'weighting',
  'failureSeed',
  'iterationSeconds',
  'reuse',
  'calibrationIterations',
  'maxSlotsFactor',
  'data',
] as const;

function withoutLog(o: ExperimentOptions): Omit<ExperimentOptions, 'log'> {
  const { log: _log, ...rest } = o;
  return rest;
}

const costContext = (o: ExperimentOptions, bytes: ModelBytes, redundant: boolean): CostContext => ({
  params: { network: o.network, replacementWaitSeconds: o.replacementWaitSeconds },
  bytes,
  nStages: bytes.stage.length,
  redundant,
  redundantCost: o.redundantCost,
});

/**
 * T, C and the checkpoint interval per rate. T comes from the calibration iterations, or, when
 * `executedPlain` is given (the median task times of every executed plain iteration: far less
 * noisy on a shared machine), from those.
 */
function calibrationOf(o: ExperimentOptions, bytes: ModelBytes, cal: TraceBundle['calibration'], executedPlain?: IterationTiming): Calibration {
  const timing = medianTiming(cal.timings.length > 1 ? cal.timings.slice(1) : cal.timings); // the first warms up
  const T = iterationSeconds(costContext(o, bytes, false), timing);
  const Tk = executedPlain ? iterationSeconds(costContext(o, bytes, false), executedPlain) : T;
  const C = checkpointSeconds(costContext(o, bytes, false));
  const measured = [...cal.measured].sort((a, b) => a - b);
  const calibration: Calibration = {
    iterationSeconds: T,
    redundantIterationSeconds: iterationSeconds(costContext(o, bytes, true), timing),
    checkpointSeconds: C,
    measuredSeconds: measured[measured.length >> 1]!,
    checkpointEvery: {},
    intervalFrom: executedPlain ? 'executed iterations' : 'calibration',
    intervalIterationSeconds: Tk,
  };
  for (const rate of o.rates) {
    const p = perIterationProbability(rate / 100, o.iterationSeconds);
    calibration.checkpointEvery[String(rate)] = o.checkpointEvery === 'auto' ? checkpointEveryIterations(C, Tk, bytes.stage.length, p) : o.checkpointEvery;
  }
  return calibration;
}

function specsOf(o: ExperimentOptions, cal: Calibration): RunSpec[] {
  const specs: RunSpec[] = [];
  for (const rate of o.rates) {
    for (const strategy of o.strategies) specs.push({ strategy, rate, checkpointEvery: cal.checkpointEvery[String(rate)] ?? null });
  }
  return specs;
}

const deriveContext = (o: ExperimentOptions, bytes: ModelBytes): DeriveContext => ({
  bytes,
  failureSeed: o.failureSeed,
  iterationSeconds: o.iterationSeconds,
  iterations: o.iterations,
  maxSlots: Math.ceil(o.maxSlotsFactor * o.iterations),
});

export async function runExperiment(o: ExperimentOptions): Promise<ExperimentResult> {
  checkExperimentOptions(o);
  const log = o.log ?? (() => {});
  const cfg = modelConfigOf({ ...o.settings, recovery: 'checkfree' });
  const S = o.settings.stages;
  const { dataset } = loadDataset({ path: o.data, seqLen: cfg.seqLen });
  const bytes = modelBytes(cfg, S, o.settings.batch);
  const ctx: RunContext = {
    config: cfg,
    dataset,
    valBatches: dataset.valBatches(o.evalBatches, o.settings.batch),
    batch: o.settings.batch,
    microbatches: o.settings.microbatches,
    lr: o.settings.lr,
    seed: o.settings.seed,
    iterations: o.iterations,
    evalEvery: o.evalEvery,
    replicaEvery: o.replicaEvery,
    lrScale: o.lrScale,
    weighting: o.weighting,
    failureSeed: o.failureSeed,
    iterationSeconds: o.iterationSeconds,
    maxSlots: Math.ceil(o.maxSlotsFactor * o.iterations),
    bytes,
  };

  // 1. calibration
  const cal: TraceBundle['calibration'] = { timings: [], measured: [] };
  {
    const stages = Array.from({ length: S }, (_, i) => new Stage(cfg, i, { lr: o.settings.lr }));
    const timer = new TaskTimer();
    timer.attach(stages);
    try {
      for (let it = 0; it < o.calibrationIterations; it++) {
        const batches = Array.from({ length: o.settings.microbatches }, (_, mb) => dataset.trainBatch(o.settings.seed ^ 0x5eed, it, mb, o.settings.batch));
        const t0 = performance.now();
        timer.begin(S, o.settings.microbatches, false);
        runIteration(stages, batches, { swap: false, iteration: it });
        cal.timings.push(timer.end());
        cal.measured.push((performance.now() - t0) / 1000);
      }
    } finally {
      stages.forEach((s) => s.dispose());
    }
  }
  const calibration = calibrationOf(o, bytes, cal);
  log(
    `calibration: ${calibration.measuredSeconds.toFixed(2)} s per iteration in process; modelled swarm iteration ${calibration.iterationSeconds.toFixed(2)} s ` +
      `(redundant ${calibration.redundantIterationSeconds.toFixed(2)} s), checkpoint ${calibration.checkpointSeconds.toFixed(2)} s; checkpoint every (from these) ` +
      o.rates.map((r) => `${r}%/h: ${calibration.checkpointEvery[String(r)] ?? 'never'}`).join(', '),
  );

  // 2. plan
  const specs = specsOf(o, calibration);
  const derivable = (s: RunSpec) => o.reuse && isDerivable(s, ctx, S);
  const needBase = { plain: specs.some((s) => derivable(s) && !usesSwap({ recovery: s.strategy })), swap: specs.some((s) => derivable(s) && usesSwap({ recovery: s.strategy })) };
  for (const rate of o.rates) {
    const sched = new FailureSchedule(o.failureSeed, S, rate / 100, o.iterationSeconds);
    const f = sched.failuresUpTo(o.iterations);
    log(
      `rate ${rate}%/h: p_iter ${sched.probability.toPrecision(3)} per stage, ${sched.expectedFailures(o.iterations).toFixed(2)} expected / ` +
        `${f.length} drawn stage failures in the first ${o.iterations} slots` + (f.length ? ` (${f.map((x) => `slot ${x.slot} stage ${x.stage}`).join('; ')})` : ''),
    );
  }

  // 3. execute
  const bundle: TraceBundle = {
    version: 1,
    options: withoutLog(o),
    model: { dModel: cfg.dModel, nLayers: cfg.nLayers, seqLen: cfg.seqLen, bytes },
    calibration: cal,
    bases: { plain: null, swap: null },
    executed: [],
  };
  const progress = (name: string) => (r: SlotRecord) => {
    if (r.failed.length || r.rollbackTo !== null) log(`  ${name} slot ${r.slot}: ${r.events.join('; ')}`);
  };
  const exec = async (spec: RunSpec, label: string): Promise<RunTrace> => {
    const t0 = performance.now();
    const trace = await executeRun(ctx, spec, { onSlot: progress(label) });
    const last = trace.slots[trace.slots.length - 1];
    const val = [...trace.slots].reverse().find((s) => s.valLoss !== null)?.valLoss;
    log(`${label}: ${trace.slots.length} slots, iteration ${last?.iteration ?? 0}, final val ${val?.toFixed(3) ?? '-'}, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    return trace;
  };
  if (needBase.plain) bundle.bases.plain = await exec({ strategy: 'checkfree', rate: 0, checkpointEvery: null }, 'failure-free run (plain order)');
  if (needBase.swap) bundle.bases.swap = await exec({ strategy: 'checkfree+', rate: 0, checkpointEvery: null }, 'failure-free run (CheckFree+ order)');
  for (const spec of specs) {
    if (derivable(spec)) log(`${runName(spec)}: derived from the failure-free run (no failure, or only exact restores)`);
    else bundle.executed.push(await exec(spec, runName(spec)));
  }
  return priceAndReport(o, bundle, { writeTraces: true });
}

/**
 * Prices the runs of `bundle` under the cost options of `o` and writes the outputs. Runs that
 * were executed are used as they are; the others are derived from the failure-free runs (which
 * only works for runs isDerivable allows; with --no-reuse everything was executed).
 */
export function priceAndReport(o: ExperimentOptions, bundle: TraceBundle, opts: { writeTraces?: boolean } = {}): ExperimentResult {
  const log = o.log ?? (() => {});
  const bytes = bundle.model.bytes;
  const S = bytes.stage.length;
  const dctx = deriveContext(o, bytes);
  const { plain, swap } = bundle.bases;
  const executed = [...bundle.executed, ...(plain ? [plain] : []), ...(swap ? [swap] : [])];
  const medians = new Map<boolean, IterationTiming>();
  for (const sw of [false, true]) {
    const ts = executed.filter((t) => t.swap === sw).flatMap((t) => t.slots.map((s) => s.timing));
    if (ts.length) medians.set(sw, medianTiming(ts));
  }
  // Checkpoint runs derived from the failure-free run can use the steadier executed-iteration T;
  // executed ones (--no-reuse) were run with the calibration's interval and must keep it.
  // stage-restore and cpsr runs with a failure are always executed: then every checkpointed
  // strategy keeps the calibration's interval, so all of them compare at the same interval.
  const checkpointDerived = o.reuse && plain !== null && !bundle.executed.some((t) => takesCheckpoints(t.spec.strategy) && t.spec.checkpointEvery !== null);
  const calibration = calibrationOf(o, bytes, bundle.calibration, checkpointDerived ? medians.get(false) : undefined);
  if (o.checkpointEvery === 'auto' && o.strategies.some(takesCheckpoints)) {
    log(
      `checkpoint interval (Young/Daly, T ${calibration.intervalIterationSeconds.toFixed(3)} s from the ${calibration.intervalFrom}, C ${calibration.checkpointSeconds.toFixed(3)} s): ` +
        o.rates.map((r) => `${r}%/h: ${calibration.checkpointEvery[String(r)] ?? 'never'}`).join(', '),
    );
  }
  const sameSpec = (a: RunSpec, b: RunSpec) => a.strategy === b.strategy && a.rate === b.rate && (!takesCheckpoints(a.strategy) || a.checkpointEvery === b.checkpointEvery);
  const traces = specsOf(o, calibration).map((spec) => {
    const done = bundle.executed.find((t) => sameSpec(t.spec, spec));
    if (done) return done;
    const base = usesSwap({ recovery: spec.strategy }) ? swap : plain;
    if (!base || !isDerivable(spec, dctx, S)) {
      throw new RangeError(`${runName(spec)}${takesCheckpoints(spec.strategy) ? ` (every ${spec.checkpointEvery ?? 'never'})` : ''} was not executed and cannot be derived from a failure-free run`);
    }
    return deriveRun(dctx, spec, base, base === swap ? 'failure-free, CheckFree+ order' : 'failure-free, plain order');
  });

  // price
  const timingFor = (r: SlotRecord) => (o.computeTime === 'median' ? medians.get(r.timing.swap)! : r.timing);
  const costed = traces.map((trace) => ({ trace, slots: costRun(costContext(o, bytes, trace.spec.strategy === 'redundant'), trace, timingFor) }));
  const pre: RunResult[] = costed.map((c) => ({ ...c, summary: summarize(c.trace, c.slots, null) }));
  const target = o.targetLoss === 'auto' ? chooseTarget(pre, plain, o.iterations) : o.targetLoss;
  const runs: RunResult[] = costed.map((c) => ({ ...c, summary: summarize(c.trace, c.slots, target) }));
  for (const r of runs) {
    const s = r.summary;
    log(
      `${runName(r.trace.spec).padEnd(16)} final val ${s.finalValLoss.toFixed(3)}  pure compute ${s.wallSeconds.toFixed(1)} s  modelled ${s.modelledSeconds.toFixed(1)} s  ` +
        `target ${s.timeToTarget ? `${s.timeToTarget.modelled.toFixed(1)} s` : 'not reached'}  failures ${s.failures}${s.derived ? '  (derived)' : ''}`,
    );
  }

  // write
  const files: string[] = [];
  if (o.out) {
    mkdirSync(o.out, { recursive: true });
    const write = (name: string, text: string) => {
      const p = join(o.out!, name);
      writeFileSync(p, text);
      files.push(p);
    };
    const m = bundle.model;
    write('results.csv', toCsv(runs));
    const net = o.network;
    for (const rate of o.rates) {
      const sub = `${o.settings.preset}, ${S} stages, ${o.settings.microbatches}x${o.settings.batch} seq ${m.seqLen}; ${net.upMbps}/${net.downMbps} Mbit/s, ${net.latencyMs} ms; wait ${o.replacementWaitSeconds} s; failure clock ${o.iterationSeconds} s/iteration`;
      write(`loss-vs-time-${rate}.svg`, ratePlot(rate, runs.filter((r) => r.summary.rate === rate), sub));
    }
    write('summary.md', summaryMarkdown(o, m.dModel, m.nLayers, m.seqLen, bytes.stage, calibration, target, runs));
    write(
      'experiment.json',
      JSON.stringify(
        {
          options: withoutLog(o),
          model: { dModel: m.dModel, nLayers: m.nLayers, seqLen: m.seqLen, stageBytes: bytes.stage, activationBytes: bytes.activation },
          calibration,
          target,
          medianTiming: Object.fromEntries([...medians].map(([k, v]) => [k ? 'swap' : 'plain', v])),
          runs: runs.map((r) => ({ ...r.summary, valPoints: valPoints(r.trace, r.slots) })),
        },
        null,
        1,
      ),
    );
    if (opts.writeTraces) write('traces.json', JSON.stringify(bundle));
  }
  return { runs, calibration, target, files };
}

/** Reads the traces.json an experiment wrote. */
export function readTraceBundle(dir: string): TraceBundle {
  const path = join(dir, 'traces.json');
  let b: TraceBundle;
  try {
    b = JSON.parse(readFileSync(path, 'utf8')) as TraceBundle;
  } catch (e) {
    throw new RangeError(`cannot read ${path}: ${(e as Error).message}`);
  }
  if (b.version !== 1 || !b.options || !b.model || !Array.isArray(b.executed)) throw new RangeError(`${path} is not a traces.json of this experiment version`);
  return b;
}

/**
 * Prices the runs of an earlier experiment again under other cost options (network, replacement
 * wait, redundant cost, checkpoint interval, target, compute time) without training anything:
 * what the runs computed does not depend on them. The options that do (TRAJECTORY_OPTIONS) are
 * taken from the bundle.
 */
export function repriceExperiment(bundle: TraceBundle, cost: Partial<ExperimentOptions> & { out: string | null; log?: (l: string) => void }): ExperimentResult {
  const o: ExperimentOptions = { ...(bundle.options as ExperimentOptions), ...cost };
  for (const k of TRAJECTORY_OPTIONS) (o as unknown as Record<string, unknown>)[k] = bundle.options[k];
  checkExperimentOptions(o);
  return priceAndReport(o, bundle);
}

function summaryMarkdown(
  o: ExperimentOptions,
  dModel: number,
  nLayers: number,
  seqLen: number,
  stageBytes: number[],
  cal: Calibration,
  target: number | null,
  runs: RunResult[],
): string {
  const s = o.settings;
  const lines = [
    '# Churn experiment',
    '',
    `- model: preset ${s.preset} (d_model ${dModel}, ${nLayers} layers), ${s.stages} stages, ${s.microbatches} microbatches x ${s.batch} sequences x ${seqLen} tokens, lr ${s.lr}, seed ${s.seed}`,
    `- ${o.iterations} iterations per run; validation every ${o.evalEvery} on ${o.evalBatches} batches; failure seed ${o.failureSeed}`,
    `- failure clock: ${o.iterationSeconds} s per iteration; p_iter per stage: ${o.rates.map((r) => `${r}%/h -> ${perIterationProbability(r / 100, o.iterationSeconds).toPrecision(3)}`).join(', ')}`,
    `- network: ${o.network.upMbps} Mbit/s up, ${o.network.downMbps} Mbit/s down, ${o.network.latencyMs} ms per transfer; replacement volunteer wait ${o.replacementWaitSeconds} s`,
    `- redundant baseline pays by ${o.redundantCost === 'compute' ? 'computing its successor (Bamboo): no replacement wait on a restore' : "copying its state to its predecessor after every step (the coordinator's redundant): replacement wait on a restore"}`,
    `- stage parameter bytes: ${stageBytes.map((b) => `${(b / 1024).toFixed(0)} KiB`).join(', ')} (checkpoint = 3x: weights + Adam m, v)`,
    `- calibration: ${cal.measuredSeconds.toFixed(2)} s per iteration in process; modelled swarm iteration ${cal.iterationSeconds.toFixed(3)} s (redundant ${cal.redundantIterationSeconds.toFixed(3)} s); checkpoint ${cal.checkpointSeconds.toFixed(3)} s`,
    `- checkpoint interval (${o.checkpointEvery === 'auto' ? `Young/Daly sqrt(2C/lambda), C ${cal.checkpointSeconds.toFixed(3)} s, T ${cal.intervalIterationSeconds.toFixed(3)} s from the ${cal.intervalFrom}` : 'fixed'}): ${o.rates.map((r) => `${r}%/h: ${cal.checkpointEvery[String(r)] ?? 'never'}`).join(', ')}`,
    `- modelled compute: ${o.computeTime === 'median' ? 'median task times over all executed iterations with the same path order' : "each slot's own measured task times"}; CheckFree lr scale ${o.lrScale}, weighting ${o.weighting}, CheckFree+ replicas every ${o.replicaEvery}`,
    `- target validation loss: ${target === null ? '-' : target.toFixed(3)} (${o.targetLoss === 'auto' ? 'auto: the failure-free run at 75% of the iterations' : 'given'})`,
    '',
    'Times are seconds. "modelled" is the swarm wall clock of docs/experiments.md; "pure compute" is what the in-process runs took here. ' +
      'Columns iteration/redo/recovery/checkpoint/replica split the modelled total. * = derived from the executed failure-free run (no failure, or only exact restores: checkpoint rollbacks, redundant copies).',
    '',
    summaryTables(runs, target),
  ];
  const notes = [...new Set(runs.flatMap((r) => r.summary.notes.filter((n) => !n.startsWith('derived'))))];
  if (notes.length) lines.push('Notes:', '', ...notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}
