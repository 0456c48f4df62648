/**
 * `npm run study [-- --quick] [--out dir] [--workers n] [--no-swarm] [--edge reinit|copy]
 *  [--target-iterations n] [--mc-runs n]`: the churn study (experiments/study/study.ts,
 * docs/experiments.md "Churn study"). Default size: about 30 minutes on 2 cores; --quick: a
 * small case in a minute or two.
 */
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { EDGE_POLICIES, type EdgePolicy } from '../../shared/recovery/plan.js';
import type { ForkStudyConfig } from './fork.js';
import { RECOVERY_STRATEGIES, type RecoveryStrategy } from '../../shared/run-settings.js';
import { EXPERIMENT_STRATEGIES } from '../experiment.js';
import { runStudy, type PricingOptions, type StudyOptions, type ValidationOptions } from './study.js';

const ROOT = new URL('../..', import.meta.url).pathname;

/** The main fork study: 6 stages of one block each (deep enough for averaging to matter). */
export const DEFAULT_FORK: ForkStudyConfig = {
  stages: 6,
  layersPerStage: 1,
  dModel: 64,
  nHeads: 4,
  seqLen: 32,
  microbatches: 2,
  batch: 2,
  lr: 3e-3,
  seed: 1234,
  lrScale: 1.1,
  replicaEvery: 5,
  edge: 'reinit',
  forkPoints: [20, 40, 60, 80],
  horizon: 20,
  evalEvery: 2,
  evalBatches: 4,
  strategies: ['checkfree', 'checkfree+', 'none', 'stage-restore', 'cpsr', 'exact'],
  // stage-restore / cpsr: horizons 8, 4, 0, 8 at the fork points 20, 40, 60, 80
  checkpointEvery: 12,
};

export const QUICK_FORK: ForkStudyConfig = { ...DEFAULT_FORK, dModel: 16, nHeads: 2, seqLen: 16, batch: 1, forkPoints: [6], horizon: 3, evalEvery: 1, evalBatches: 2, replicaEvery: 2, checkpointEvery: 4 };

export const DEFAULT_PRICING: PricingOptions = {
  targetIterations: 2000,
  runs: 400,
  checkpointCosts: [0.1, 0.5, 2],
  intervals: [10, 50, 100, 0],
  redundantOverheads: [0.1, 0.3, 0.6],
  waits: [0, 1, 5],
  hopRatios: [0, 0.25, 1],
  microbatches: 4,
  central: { checkpointCost: 0.5, redundantOverhead: 0.3, wait: 1, hopRatio: 0.25 },
};

/** The swarm's model must be a preset: tiny, 4 stages of one block each. */
export const DEFAULT_VALIDATION: ValidationOptions = {
  // the swarm validation does not run stage-restore / cpsr: its fork study leaves them out
  fork: { ...DEFAULT_FORK, stages: 4, batch: 1, forkPoints: [10, 20, 30], horizon: 10, evalEvery: 2, evalBatches: 2, strategies: ['checkfree', 'checkfree+', 'none', 'exact'] },
  targetIteration: 40,
  strategies: ['checkfree', 'checkfree+', 'none', 'checkpoint', 'redundant'],
  runs: 1,
  run: {
    evalEvery: 2,
    checkpointEvery: 10,
    churnProbability: 0.03,
    churnSeed: 7,
    warmupIterations: 3,
    replacementWaitMs: 500,
    maxIterations: 200,
    timeoutMs: 300_000,
  },
};

export const QUICK_VALIDATION: ValidationOptions = {
  fork: { ...DEFAULT_VALIDATION.fork, seqLen: 16, forkPoints: [4], horizon: 4, evalEvery: 2, replicaEvery: 2 },
  targetIteration: 8,
  strategies: ['checkfree'],
  runs: 1,
  run: { ...DEFAULT_VALIDATION.run, churnProbability: 0.05, maxIterations: 40, timeoutMs: 120_000 },
};

const HELP = `npm run study -- [options]

The churn study: setbacks of every recovery by forking failure-free runs, wall clock priced by
Monte Carlo in the paper's failure regime, and a validation on the real swarm (coordinator and
Node volunteers as processes, operator churn). See docs/experiments.md.

  --quick                  a small case (a minute or two)
  --out <dir>              output folder (default results/study, or results/study-quick)
  --workers <n>            fork-study processes (default 2)
  --no-swarm               skip the real-swarm validation
  --swarm-strategies <a,b> the strategies of the swarm validation (default: all five)
  --reuse-forks            read the fork studies a previous run with the same settings left in
                           <out>/work and <out>/work-validation instead of training them again
  --edge <${EDGE_POLICIES.join('|')}>   plain checkfree at the first/last stage (default reinit, the paper)
  --target-iterations <n>  failure-free iterations to the target in the pricing (default ${DEFAULT_PRICING.targetIterations})
  --mc-runs <n>            Monte Carlo runs per priced cell (default ${DEFAULT_PRICING.runs})
  --seed <n>               Monte Carlo seed (default 1)
  -h, --help
`;

export function parseStudyArgs(argv: string[]): StudyOptions | null {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' },
      out: { type: 'string' },
      workers: { type: 'string' },
      'no-swarm': { type: 'boolean' },
      'reuse-forks': { type: 'boolean' },
      'swarm-strategies': { type: 'string' },
      edge: { type: 'string' },
      'target-iterations': { type: 'string' },
      'mc-runs': { type: 'string' },
      seed: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) return null;
  const int = (name: string, raw: string | undefined, dflt: number, min = 1) => {
    if (raw === undefined) return dflt;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) throw new RangeError(`--${name} must be an integer >= ${min}, got "${raw}"`);
    return n;
  };
  const edge = (v.edge ?? 'reinit') as EdgePolicy;
  if (!EDGE_POLICIES.includes(edge)) throw new RangeError(`unknown --edge "${edge}"; choose one of: ${EDGE_POLICIES.join(', ')}`);
  const quick = v.quick ?? false;
  const fork = { ...(quick ? QUICK_FORK : DEFAULT_FORK), edge };
  const chosen = v['no-swarm'] ? null : quick ? QUICK_VALIDATION : DEFAULT_VALIDATION;
  const strategies = v['swarm-strategies']?.split(',').map((x) => x.trim()) as RecoveryStrategy[] | undefined;
  for (const x of strategies ?? []) {
    if (!RECOVERY_STRATEGIES.includes(x)) throw new RangeError(`unknown strategy "${x}" in --swarm-strategies`);
    // The swarm validation's prediction (predictSwarm) prices rollbacks and rebuilds, not stage restores yet.
    if (!EXPERIMENT_STRATEGIES.includes(x) || x === 'cpsr' || x === 'stage-restore') throw new RangeError(`strategy "${x}" is not validated on the swarm by the churn study yet (the fork study and the pricing include it)`);
  }
  const validation = chosen && strategies ? { ...chosen, strategies } : chosen;
  return {
    fork,
    workers: int('workers', v.workers, 2),
    pricing: {
      ...DEFAULT_PRICING,
      targetIterations: int('target-iterations', v['target-iterations'], DEFAULT_PRICING.targetIterations),
      runs: int('mc-runs', v['mc-runs'], quick ? 100 : DEFAULT_PRICING.runs, 2),
    },
    validation: validation && { ...validation, fork: { ...validation.fork, edge } },
    out: v.out ?? join(ROOT, 'results', quick ? 'study-quick' : 'study'),
    reuseForks: v['reuse-forks'] ?? false,
    seed: int('seed', v.seed, 1, 0),
    log: (l) => process.stdout.write(l + '\n'),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    const o = parseStudyArgs(process.argv.slice(2));
    if (!o) {
      process.stdout.write(HELP);
    } else {
      const r = await runStudy(o);
      process.stdout.write('\n' + r.summary + `\nwritten to ${o.out}\n`);
    }
  } catch (e) {
    process.stderr.write(`study: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
