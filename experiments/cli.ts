/**
 * Churn experiments: CheckFree / CheckFree+ against checkpointing, redundant computation and no
 * recovery, at several hourly failure rates, on the real pipeline code (docs/experiments.md).
 *
 *   npm run experiment -- --rates 0,5,10,16,33 --strategies checkfree,checkfree+,checkpoint,redundant,none --iterations 100
 */
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import * as tf from '../shared/model/tf.js';
import { ConfigError } from '../shared/model/config.js';
import { DataError } from '../shared/data/dataset.js';
import { useNodeBackend } from '../trainer/node-backend.js';
import { DEFAULT_SETTINGS, RECOVERY_STRATEGIES, type RecoveryStrategy } from '../shared/run-settings.js';
import { AVERAGE_WEIGHTINGS, type AverageWeighting } from '../shared/recovery/average.js';
import { DEFAULT_NETWORK } from './cost-model.js';
import { EXPERIMENT_STRATEGIES, readTraceBundle, repriceExperiment, runExperiment, type ExperimentOptions, type ComputeTime } from './experiment.js';

export const DEFAULT_ITERATION_SECONDS = 65;

const HELP = `Usage: npm run experiment -- [options]

Runs every strategy at every hourly failure rate on the in-process pipeline and writes
results.csv, loss-vs-time-<rate>.svg, summary.md and experiment.json (docs/experiments.md).

  --rates <list>               hourly failure rates in percent (default 0,5,10,16,33)
  --strategies <list>          of ${EXPERIMENT_STRATEGIES.join(', ')} (default: all)
  --iterations <n>             iterations each run must complete (default 100)
  --preset <tiny|small|base>   model size (default ${DEFAULT_SETTINGS.preset})
  --stages <n>                 pipeline stages (default ${DEFAULT_SETTINGS.stages})
  --microbatches <n>           microbatches per iteration (default ${DEFAULT_SETTINGS.microbatches})
  --batch <n>                  sequences per microbatch (default ${DEFAULT_SETTINGS.batch})
  --seq <n>                    sequence length (default: the preset's)
  --lr <x>                     Adam learning rate (default ${DEFAULT_SETTINGS.lr})
  --seed <n>                   init and data seed (default ${DEFAULT_SETTINGS.seed})
  --failure-seed <n>           failure draws (default: --seed); same seed = same failures for every strategy
  --iteration-seconds <s>      failure clock: seconds one iteration stands for in p_iter = 1-(1-h)^(s/3600)
                               (default ${DEFAULT_ITERATION_SECONDS}: the paper's 500M reference, 5%/h -> ~0.0009)
  --replacement-wait <s>       seconds until a replacement volunteer takes a lost stage (default 10)
  --redundant-cost <compute|copy>  redundant baseline: each stage computes its successor (Bamboo, no wait on
                               a restore) or ships its state to its predecessor every iteration (default compute)
  --up-mbps <x>                volunteer uplink (default ${DEFAULT_NETWORK.upMbps})
  --down-mbps <x>              volunteer downlink (default ${DEFAULT_NETWORK.downMbps})
  --latency-ms <x>             latency per transfer / relay hop (default ${DEFAULT_NETWORK.latencyMs})
  --checkpoint-every <n|auto>  checkpoint interval in iterations; auto = Young/Daly sqrt(2C/lambda) (default auto)
  --replica-every <n>          CheckFree+ embedding/head replica refresh interval (default 5)
  --lr-scale <x>               learning-rate scale of a recovered stage (default 1.1)
  --weighting <w>              CheckFree neighbour weighting: ${AVERAGE_WEIGHTINGS.join(', ')} (default post-clip)
  --eval-every <n>             validate every n iterations (default 5)
  --eval-batches <n>           validation batches (default 2)
  --target-loss <x|auto>       time-to-target loss (default auto: the failure-free run at 75% of the iterations)
  --compute-time <median|measured>  task times for the modelled clock (default median)
  --no-reuse                   execute every run, even those identical to the failure-free run
  --calibration-iterations <n> timed warm-up iterations for T and C (default 3)
  --max-slots-factor <x>       stop a run after x * iterations slots (default 4)
  --data <file>                UTF-8 text corpus (default: the shipped Moby Dick)
  --backend <wasm|cpu>         tfjs backend (default wasm)
  --out <dir>                  output folder (default results/experiment-<timestamp>)
  --reprice <dir>              train nothing: price the runs an earlier experiment saved in <dir>/traces.json
                               again under other cost options (only --up-mbps, --down-mbps, --latency-ms,
                               --replacement-wait, --redundant-cost, --checkpoint-every, --target-loss,
                               --compute-time may be given; default --out <dir>/reprice-<timestamp>)
  -h, --help                   this text
`;

/** The flags --reprice accepts (they change only the modelled clock, not what the runs computed). */
export const REPRICE_FLAGS = ['up-mbps', 'down-mbps', 'latency-ms', 'replacement-wait', 'redundant-cost', 'checkpoint-every', 'target-loss', 'compute-time', 'out', 'reprice', 'backend'];

export interface ParsedArgs extends ExperimentOptions {
  backend: string;
  /** Folder of an earlier experiment to price again, or null. */
  reprice: string | null;
  /** Flags given on the command line. */
  given: string[];
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:]/g, '-').replace(/\..+$/, '');
}

export function parseExperimentArgs(argv: string[]): ParsedArgs | null {
  const { values, tokens } = parseArgs({
    args: argv,
    allowNegative: true,
    tokens: true,
    options: {
      rates: { type: 'string' },
      strategies: { type: 'string' },
      iterations: { type: 'string' },
      preset: { type: 'string' },
      stages: { type: 'string' },
      microbatches: { type: 'string' },
      batch: { type: 'string' },
      seq: { type: 'string' },
      lr: { type: 'string' },
      seed: { type: 'string' },
      'failure-seed': { type: 'string' },
      'iteration-seconds': { type: 'string' },
      'replacement-wait': { type: 'string' },
      'redundant-cost': { type: 'string' },
      'up-mbps': { type: 'string' },
      'down-mbps': { type: 'string' },
      'latency-ms': { type: 'string' },
      'checkpoint-every': { type: 'string' },
      'replica-every': { type: 'string' },
      'lr-scale': { type: 'string' },
      weighting: { type: 'string' },
      'eval-every': { type: 'string' },
      'eval-batches': { type: 'string' },
      'target-loss': { type: 'string' },
      'compute-time': { type: 'string' },
      reuse: { type: 'boolean', default: true },
      'calibration-iterations': { type: 'string' },
      'max-slots-factor': { type: 'string' },
      data: { type: 'string' },
      backend: { type: 'string' },
      out: { type: 'string' },
      reprice: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return null;
  const num = (name: keyof typeof values, d: number): number => {
    const v = values[name];
    if (v === undefined) return d;
    const n = Number(v);
    if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n)) throw new ConfigError(`--${name} must be a number, got "${String(v)}"`);
    return n;
  };
  const list = (v: string | undefined, d: string) => (v ?? d).split(',').map((x) => x.trim()).filter(Boolean);
  const rates = list(values.rates, '0,5,10,16,33').map((r) => {
    const n = Number(r);
    if (!Number.isFinite(n)) throw new ConfigError(`--rates must be numbers (percent per hour), got "${r}"`);
    return n;
  });
  const strategies = list(values.strategies, EXPERIMENT_STRATEGIES.join(',')) as RecoveryStrategy[];
  for (const s of strategies) {
    if (!RECOVERY_STRATEGIES.includes(s)) throw new ConfigError(`unknown strategy "${s}"; choose from ${RECOVERY_STRATEGIES.join(', ')}`);
    if (!EXPERIMENT_STRATEGIES.includes(s)) throw new ConfigError(`strategy "${s}" is not simulated by npm run experiment; npm run bench:cpsr runs it in process, --recovery ${s} in the swarm`);
  }
  const ce = values['checkpoint-every'] ?? 'auto';
  const tl = values['target-loss'] ?? 'auto';
  const ct = (values['compute-time'] ?? 'median') as ComputeTime;
  if (ct !== 'median' && ct !== 'measured') throw new ConfigError(`--compute-time must be median or measured, got "${ct}"`);
  const redundantCost = values['redundant-cost'] ?? 'compute';
  if (redundantCost !== 'compute' && redundantCost !== 'copy') throw new ConfigError(`--redundant-cost must be compute or copy, got "${redundantCost}"`);
  const weighting = (values.weighting ?? 'post-clip') as AverageWeighting;
  if (!AVERAGE_WEIGHTINGS.includes(weighting)) throw new ConfigError(`--weighting must be one of ${AVERAGE_WEIGHTINGS.join(', ')}`);
  const seed = num('seed', DEFAULT_SETTINGS.seed);
  return {
    settings: {
      preset: values.preset ?? DEFAULT_SETTINGS.preset,
      stages: num('stages', DEFAULT_SETTINGS.stages),
      microbatches: num('microbatches', DEFAULT_SETTINGS.microbatches),
      batch: num('batch', DEFAULT_SETTINGS.batch),
      seqLen: values.seq !== undefined ? num('seq', 0) : undefined,
      lr: num('lr', DEFAULT_SETTINGS.lr),
      seed,
    },
    iterations: num('iterations', 100),
    rates,
    strategies,
    evalEvery: num('eval-every', 5),
    evalBatches: num('eval-batches', 2),
    replicaEvery: num('replica-every', 5),
    lrScale: num('lr-scale', 1.1),
    weighting,
    failureSeed: num('failure-seed', seed),
    iterationSeconds: num('iteration-seconds', DEFAULT_ITERATION_SECONDS),
    network: { upMbps: num('up-mbps', DEFAULT_NETWORK.upMbps), downMbps: num('down-mbps', DEFAULT_NETWORK.downMbps), latencyMs: num('latency-ms', DEFAULT_NETWORK.latencyMs) },
    replacementWaitSeconds: num('replacement-wait', 10),
    redundantCost,
    checkpointEvery: ce === 'auto' ? 'auto' : num('checkpoint-every', 0),
    targetLoss: tl === 'auto' ? 'auto' : num('target-loss', 0),
    computeTime: ct,
    reuse: values.reuse ?? true,
    calibrationIterations: num('calibration-iterations', 3),
    maxSlotsFactor: num('max-slots-factor', 4),
    out: values.out ?? `results/experiment-${timestamp()}`,
    data: values.data,
    backend: values.backend ?? 'wasm',
    reprice: values.reprice ?? null,
    given: [...new Set(tokens.flatMap((t) => (t.kind === 'option' ? [t.name] : [])))],
  };
}

function reprice(opts: ParsedArgs): void {
  const dir = opts.reprice!;
  const bad = opts.given.filter((g) => !REPRICE_FLAGS.includes(g));
  if (bad.length) throw new ConfigError(`--reprice can only change cost options; not ${bad.map((b) => `--${b}`).join(', ')}`);
  const bundle = readTraceBundle(dir);
  const has = (f: string) => opts.given.includes(f);
  const net = { ...bundle.options.network };
  if (has('up-mbps')) net.upMbps = opts.network.upMbps;
  if (has('down-mbps')) net.downMbps = opts.network.downMbps;
  if (has('latency-ms')) net.latencyMs = opts.network.latencyMs;
  const out = has('out') ? opts.out : join(dir, `reprice-${timestamp()}`);
  console.log(`repricing ${dir} (nothing is trained) -> ${out}`);
  const r = repriceExperiment(bundle, {
    network: net,
    ...(has('replacement-wait') ? { replacementWaitSeconds: opts.replacementWaitSeconds } : {}),
    ...(has('redundant-cost') ? { redundantCost: opts.redundantCost } : {}),
    ...(has('checkpoint-every') ? { checkpointEvery: opts.checkpointEvery } : {}),
    ...(has('target-loss') ? { targetLoss: opts.targetLoss } : {}),
    ...(has('compute-time') ? { computeTime: opts.computeTime } : {}),
    out,
    log: (l) => console.log(l),
  });
  console.log(`\ntarget validation loss ${r.target?.toFixed(3) ?? '-'}`);
  console.log(`wrote:\n${r.files.map((f) => `  ${f}`).join('\n')}`);
}

async function main(): Promise<void> {
  const opts = parseExperimentArgs(process.argv.slice(2));
  if (!opts) {
    process.stdout.write(HELP);
    return;
  }
  if (opts.reprice) {
    reprice(opts);
    return;
  }
  await useNodeBackend(opts.backend);
  const s = opts.settings;
  console.log(
    `churn experiment: preset ${s.preset}, ${s.stages} stages, ${s.microbatches}x${s.batch}, ${opts.iterations} iterations, ` +
      `rates ${opts.rates.join(',')}%/h, strategies ${opts.strategies.join(',')}, backend ${tf.getBackend()}, out ${opts.out}`,
  );
  const t0 = Date.now();
  const r = await runExperiment({ ...opts, log: (l) => console.log(l) });
  console.log(`\ntarget validation loss ${r.target?.toFixed(3) ?? '-'}; done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  console.log(`wrote:\n${r.files.map((f) => `  ${f}`).join('\n')}`);
}

const isMain = import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('experiments/cli.ts');
if (isMain) {
  main().catch((e: unknown) => {
    if (e instanceof ConfigError || e instanceof DataError || e instanceof RangeError || (e as Error)?.name === 'TypeError') {
      console.error(`error: ${(e as Error).message}`);
      process.exit(2);
    }
    throw e;
  });
}
