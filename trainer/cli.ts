/**
 * The local trainer: trains the staged model in one Node process, microbatch by microbatch
 * through the stages exactly as the swarm does, and prints train and validation loss.
 *
 *   npm run train:local -- --stages 4 --steps 200
 */
import { parseArgs } from 'node:util';
import * as tf from '../shared/model/tf.js';

import { Stage } from '../shared/model/stage.js';
import { ConfigError } from '../shared/model/config.js';
import { DataError } from '../shared/data/dataset.js';
import { TokenizerError } from '../shared/data/tokenizer.js';
import { useNodeBackend } from './node-backend.js';
import { loadDataset } from './corpus-file.js';
import { runIteration, evaluate } from './pipeline.js';
import { runReplicatedIteration, dilocoSync, startDiloco, type SyncReport } from './replicated-pipeline.js';
import { DEFAULT_DP, checkDpSettings, syncsAfter, type DpMode, type DpSettings } from '../shared/dp/dp-settings.js';
import { roundRobinAssignment, checkAssignment, AssignmentError, type ReplicaAssignment } from '../shared/dp/replica-assignment.js';
import type { NamedWeights } from '../shared/model/stage.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { DEFAULT_SETTINGS, checkSettings, modelConfigOf, wireOf, type RunSettings, type RecoveryStrategy } from '../shared/run-settings.js';
import { WIRE_ENCODINGS, type WireEncoding } from '../shared/protocol/wire-encoding.js';

const HELP = `Usage: npm run train:local -- [options]

Trains the pipeline-split model in one process (the reference for the swarm).

  --preset <tiny|small|base>   model size (default ${DEFAULT_SETTINGS.preset})
  --stages <n>                 pipeline stages; must divide the layer count (default ${DEFAULT_SETTINGS.stages})
  --steps <n>                  optimizer steps (default 200)
  --microbatches <n>           microbatches per step (default ${DEFAULT_SETTINGS.microbatches})
  --batch <n>                  sequences per microbatch (default ${DEFAULT_SETTINGS.batch})
  --seq <n>                    sequence length (default: the preset's)
  --lr <x>                     Adam learning rate (default ${DEFAULT_SETTINGS.lr})
  --seed <n>                   init and data seed (default ${DEFAULT_SETTINGS.seed})
  --swap                       use CheckFree+'s swapped microbatch order
  --wire <${WIRE_ENCODINGS.join('|')}>        encode activations and gradients at every hop as the swarm's --wire does
                               (default ${wireOf(DEFAULT_SETTINGS)}; docs/wire.md)
  --replicas <n>               replicas of every stage (default 1); microbatch hops are spread over them
  --dp <exact|diloco>          how a stage's replicas combine (default exact): exact sums their gradients
                               every iteration; diloco lets each step alone and syncs every --dp-every
                               iterations with an outer Nesterov step. exact for fast links; diloco when
                               gradient exchange limits the swarm (1/78 of the bytes at H 20). Measured on
                               tiny, 100 iterations: 0.7/0.9 is 7-18% worse than exact, --outer-lr 1
                               --outer-momentum 0 1.8-2.9% worse (docs/data-parallel.md)
  --dp-every <n>               diloco: iterations between syncs, H (default ${DEFAULT_DP.every})
  --outer-lr <x>               diloco: outer learning rate (default ${DEFAULT_DP.outerLr})
  --outer-momentum <x>         diloco: outer Nesterov momentum (default ${DEFAULT_DP.outerMomentum})
  --dp-wire <${WIRE_ENCODINGS.join('|')}>     diloco: pseudo-gradient encoding, both ways (default ${DEFAULT_DP.wire})
  --assignment <file.json>     replay a recorded assignment of microbatch hops to replicas (default:
                               microbatch mb on replica mb mod R at every hop)
  --record-assignment <file>   write the assignment used, as JSON
  --data <file>                any UTF-8 text file (default: the shipped Moby Dick corpus)
  --tokenizer <name>           tokenizer (default byte)
  --eval-every <n>             validate every n steps (default 20)
  --eval-batches <n>           validation batches (default 4)
  --backend <wasm|cpu>         tfjs backend (default wasm: same CPU, 5-14x faster than cpu)
  --json                       print one JSON object per log line
  -h, --help                   this text
`;

export interface LocalTrainOptions extends Omit<RunSettings, 'dp'> {
  steps: number;
  data?: string;
  tokenizer?: string;
  evalEvery: number;
  evalBatches: number;
  swap: boolean;
  /** Replicas of every stage (default 1). */
  replicas?: number;
  /** How replicas combine (default DEFAULT_DP: exact). */
  dp?: Partial<DpSettings>;
  /** Which replica runs each hop (default roundRobinAssignment); checked against the run. */
  assignment?: unknown;
  /** diloco: values per sync chunk (default SYNC_CHUNK_VALUES). */
  syncChunkValues?: number;
  onLog?: (line: { step: number; trainLoss: number; valLoss?: number; seconds: number }) => void;
  onSync?: (step: number, report: SyncReport) => void;
}

export interface LocalTrainResult {
  initialValLoss: number;
  finalValLoss: number;
  trainLosses: number[];
  valLosses: { step: number; loss: number }[];
  /** The assignment of hops to replicas the run used (what --record-assignment writes). */
  assignment: ReplicaAssignment;
  /** Every stage's final weights (replica 0's). */
  finalWeights: NamedWeights[];
}

/** Trains locally; used by the CLI and by tests. */
export async function trainLocal(o: LocalTrainOptions): Promise<LocalTrainResult> {
  const dp: DpSettings = { ...DEFAULT_DP, ...o.dp };
  checkSettings({ ...o, dp });
  checkDpSettings(dp);
  const R = o.replicas ?? 1;
  if (!Number.isInteger(R) || R < 1 || R > 64) throw new ConfigError(`replicas must be an integer in 1..64, got ${R}`);
  const cfg = modelConfigOf(o);
  const run = { stages: o.stages, microbatches: o.microbatches, swap: o.swap };
  const assignment = o.assignment === undefined ? roundRobinAssignment(run, Array(o.stages).fill(R), o.steps) : checkAssignment(o.assignment, run, o.steps);
  const { dataset } = loadDataset({ path: o.data, tokenizer: o.tokenizer, seqLen: cfg.seqLen });
  const groups = Array.from({ length: o.stages }, (_, i) => Array.from({ length: assignment.replicas[i]! }, () => new Stage(cfg, i, { lr: o.lr })));
  const stages = groups.map((g) => g[0]!);
  const plain = groups.every((g) => g.length === 1) && dp.mode === 'exact';
  const outer = dp.mode === 'diloco' ? startDiloco(groups, dp, o.syncChunkValues) : null;
  const val = dataset.valBatches(o.evalBatches, o.batch);
  const t0 = Date.now();
  const wire = wireOf(o);
  const initialValLoss = evaluate(stages, val, wire);
  const valLosses = [{ step: 0, loss: initialValLoss }];
  o.onLog?.({ step: 0, trainLoss: NaN, valLoss: initialValLoss, seconds: 0 });
  const trainLosses: number[] = [];
  for (let step = 1; step <= o.steps; step++) {
    const it = step - 1;
    const batches = Array.from({ length: o.microbatches }, (_, mb) => dataset.trainBatch(o.seed, it, mb, o.batch));
    const { loss } = plain
      ? runIteration(stages, batches, { swap: o.swap, iteration: it, wire })
      : runReplicatedIteration(groups, batches, { swap: o.swap, iteration: it, wire, hops: assignment.iterations[it]!, mode: dp.mode });
    if (outer && syncsAfter(dp, it)) {
      // Not `o.onSync?.(step, dilocoSync(...))`: optional call skips evaluating its arguments, so without
      // an onSync listener the sync never ran.
      const report = dilocoSync(groups, outer, it, dp.wire);
      o.onSync?.(step, report);
    }
    trainLosses.push(loss);
    const evalNow = step % o.evalEvery === 0 || step === o.steps;
    // Between diloco syncs the replicas differ: validation reads replica 0 of every stage.
    const valLoss = evalNow ? evaluate(stages, val, wire) : undefined;
    if (valLoss !== undefined) valLosses.push({ step, loss: valLoss });
    o.onLog?.({ step, trainLoss: loss, valLoss, seconds: (Date.now() - t0) / 1000 });
    await tf.nextFrame?.();
  }
  const finalWeights = stages.map((s) => s.getWeights());
  groups.forEach((g) => g.forEach((s) => s.dispose()));
  return { initialValLoss, finalValLoss: valLosses[valLosses.length - 1]!.loss, trainLosses, valLosses, assignment, finalWeights };
}

function readAssignment(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new AssignmentError(`cannot read --assignment ${path}: ${(e as Error).message}`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      preset: { type: 'string' },
      stages: { type: 'string' },
      steps: { type: 'string' },
      microbatches: { type: 'string' },
      batch: { type: 'string' },
      seq: { type: 'string' },
      lr: { type: 'string' },
      seed: { type: 'string' },
      swap: { type: 'boolean' },
      wire: { type: 'string' },
      data: { type: 'string' },
      tokenizer: { type: 'string' },
      'eval-every': { type: 'string' },
      'eval-batches': { type: 'string' },
      json: { type: 'boolean' },
      backend: { type: 'string' },
      replicas: { type: 'string' },
      dp: { type: 'string' },
      'dp-every': { type: 'string' },
      'outer-lr': { type: 'string' },
      'outer-momentum': { type: 'string' },
      'dp-wire': { type: 'string' },
      assignment: { type: 'string' },
      'record-assignment': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const num = (v: string | undefined, d: number, name: string) => {
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new ConfigError(`--${name} must be a number, got "${v}"`);
    return n;
  };
  await useNodeBackend(values.backend ?? 'wasm');
  const opts: LocalTrainOptions = {
    ...DEFAULT_SETTINGS,
    preset: values.preset ?? DEFAULT_SETTINGS.preset,
    stages: num(values.stages, DEFAULT_SETTINGS.stages, 'stages'),
    microbatches: num(values.microbatches, DEFAULT_SETTINGS.microbatches, 'microbatches'),
    batch: num(values.batch, DEFAULT_SETTINGS.batch, 'batch'),
    seqLen: values.seq ? num(values.seq, 0, 'seq') : undefined,
    lr: num(values.lr, DEFAULT_SETTINGS.lr, 'lr'),
    seed: num(values.seed, DEFAULT_SETTINGS.seed, 'seed'),
    recovery: (values.swap ? 'checkfree+' : 'checkfree') as RecoveryStrategy,
    wire: (values.wire ?? wireOf(DEFAULT_SETTINGS)) as WireEncoding,
    steps: num(values.steps, 200, 'steps'),
    data: values.data,
    tokenizer: values.tokenizer,
    evalEvery: num(values['eval-every'], 20, 'eval-every'),
    evalBatches: num(values['eval-batches'], 4, 'eval-batches'),
    swap: values.swap ?? false,
    replicas: num(values.replicas, 1, 'replicas'),
    dp: {
      mode: (values.dp ?? DEFAULT_DP.mode) as DpMode,
      every: num(values['dp-every'], DEFAULT_DP.every, 'dp-every'),
      outerLr: num(values['outer-lr'], DEFAULT_DP.outerLr, 'outer-lr'),
      outerMomentum: num(values['outer-momentum'], DEFAULT_DP.outerMomentum, 'outer-momentum'),
      wire: (values['dp-wire'] ?? DEFAULT_DP.wire) as WireEncoding,
    },
    assignment: values.assignment === undefined ? undefined : readAssignment(values.assignment),
    onSync: (step, r) => {
      const line = { sync: step, bytesPerReplica: r.bytesPerReplica, drift: r.drift.map((d) => +d.toFixed(4)), uplinkError: r.uplinkError.map((e) => +e.toExponential(2)) };
      if (values.json) console.log(JSON.stringify(line));
      else console.log(`sync after step ${step}: bytes/replica ${r.bytesPerReplica.join(' ')}  drift ${line.drift.join(' ')}  uplink error ${line.uplinkError.join(' ')}`);
    },
    onLog: (l) => {
      if (values.json) console.log(JSON.stringify(l));
      else
        console.log(
          `step ${String(l.step).padStart(5)}  train ${Number.isNaN(l.trainLoss) ? '   -  ' : l.trainLoss.toFixed(4)}` +
            (l.valLoss !== undefined ? `  val ${l.valLoss.toFixed(4)}` : '') +
            `  ${l.seconds.toFixed(1)}s`,
        );
    },
  };
  const cfg = (checkSettings({ ...opts, dp: { ...DEFAULT_DP, ...opts.dp } }), modelConfigOf(opts));
  console.log(
    `local trainer: preset ${opts.preset} d_model ${cfg.dModel} layers ${cfg.nLayers} stages ${opts.stages} seq ${cfg.seqLen} ` +
      `microbatches ${opts.microbatches}x${opts.batch} lr ${opts.lr} wire ${wireOf(opts)} backend ${tf.getBackend()}${opts.swap ? ' (swapped order)' : ''}`,
  );
  const dpLine = opts.dp!.mode === 'diloco' ? `diloco every ${opts.dp!.every} outer lr ${opts.dp!.outerLr} momentum ${opts.dp!.outerMomentum} dp-wire ${opts.dp!.wire}` : 'exact';
  console.log(`replicas ${opts.replicas} per stage, dp ${dpLine}`);
  const r = await trainLocal(opts);
  if (values['record-assignment']) writeFileSync(values['record-assignment'], JSON.stringify(r.assignment));
  const drop = (1 - r.finalValLoss / r.initialValLoss) * 100;
  console.log(`validation loss ${r.initialValLoss.toFixed(4)} -> ${r.finalValLoss.toFixed(4)} (${drop.toFixed(1)}% lower)`);
}

const isMain = import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('trainer/cli.ts');
if (isMain) {
  main().catch((e: unknown) => {
    if (e instanceof ConfigError || e instanceof AssignmentError || e instanceof DataError || e instanceof TokenizerError || (e as Error)?.name === 'TypeError') {
      console.error(`error: ${(e as Error).message}`);
      process.exit(2);
    }
    throw e;
  });
}
