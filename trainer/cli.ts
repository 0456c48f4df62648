/**
 * The local trainer: trains the staged model in one Node process, microbatch by microbatch
 * through the stages exactly as the swarm does, and prints train and validation loss.
 *
 *   npm run train:local -- --stages 4 --steps 200
 */
import { parseArgs } from 'node:util';
import * as tf from '../shared/model/tf.js';

import { Stage } from '../shared/model/stage.js';
import { ConfigError, PRESET_STAGES, presetNames, type PresetName, type ResolvedConfig } from '../shared/model/config.js';
import { formatModelMemory, modelMemory } from '../shared/model/memory.js';
import { DataError } from '../shared/data/dataset.js';
import { TokenizerError } from '../shared/data/tokenizer.js';
import { useNodeBackend } from './node-backend.js';
import { prepareDataset } from './corpus-file.js';
import { runIteration, evaluate, sampleGreedy } from './pipeline.js';
import { runReplicatedIteration, startDiloco, type SyncReport } from './replicated-pipeline.js';
import { DilocoReference } from './diloco-reference.js';
import { DEFAULT_DP, checkDpSettings, type DpMode, type DpSettings } from '../shared/dp/dp-settings.js';
import { roundRobinAssignment, checkAssignment, AssignmentError, type ReplicaAssignment } from '../shared/dp/replica-assignment.js';
import type { NamedWeights } from '../shared/model/stage.js';
import { DEFAULT_SETTINGS, checkSettings, modelConfigOf, wireOf, type RunSettings, type RecoveryStrategy } from '../shared/run-settings.js';
import { WIRE_ENCODINGS, type WireEncoding } from '../shared/protocol/wire-encoding.js';
import type { StreamingMerge } from '../shared/dp/streaming.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { SCHEDULERS, type SchedulerKind } from '../shared/schedule/skip-request.js';
import { evalOrder, SkipRuleError } from '../shared/schedule/skip-paths.js';
import { parseRecordedSchedule, ScheduleFileError, type RecordedSchedule } from '../shared/schedule/recorded-schedule.js';
import { SkipScheduleSource } from './skip-schedule-source.js';
import type { StageCosts } from '../shared/schedule/skip-timing.js';

const HELP = `Usage: npm run train:local -- [options]

Trains the pipeline-split model in one process (the reference for the swarm).

  --preset <name>              model size: ${presetNames().join(' | ')} (default ${DEFAULT_SETTINGS.preset})
  --stages <n>                 pipeline stages; must divide the layer count (default: the preset's
                               paper layout, 4 for paper-124m and 12 for paper-500m, else ${DEFAULT_SETTINGS.stages})
  --steps <n>                  optimizer steps (default 200)
  --microbatches <n>           microbatches per step (default ${DEFAULT_SETTINGS.microbatches})
  --batch <n>                  sequences per microbatch (default ${DEFAULT_SETTINGS.batch})
  --seq <n>                    sequence length (default: the preset's)
  --lr <x>                     Adam learning rate (default ${DEFAULT_SETTINGS.lr})
  --seed <n>                   init and data seed (default ${DEFAULT_SETTINGS.seed})
  --swap                       use CheckFree+'s swapped microbatch order
  --wire <${WIRE_ENCODINGS.join('|')}>        encode activations and gradients at every hop as the swarm's --wire does
                               (default ${wireOf(DEFAULT_SETTINGS)}; docs/wire.md)
  --skip-ratio <r>             SkipPipe: each training microbatch skips about r of the stages
                               (0 = full paths; validation always runs the full model)
  --schedule <${SCHEDULERS.join('|')}>   how skip paths are chosen (default random)
  --stage-ms <a,b,...>         the collision-aware scheduler's per-stage forward ms (default equal)
  --link-ms <x>                ... and its ms per hop between stages (default 0)
  --schedule-file <f.json>     replay a recorded skip schedule (the swarm's form; docs/skippipe.md)
  --record-schedule <f.json>   write the skip schedule this run followed
  --eval-stages <0,2,3>        also validate (and sample) with only these stages (a partial model)
  --sample <n>                 print n greedily sampled bytes at the end (full model, and --eval-stages)
  --data <path>                a UTF-8 text file, a folder of them, or JSON Lines with --data-field;
                               gzip allowed (default: the shipped Moby Dick corpus)
  --data-field <name>          read --data as JSON Lines, the text in this field of each record
  --tokenizer <name>           byte | bpe[:N] (byte-level BPE of N tokens trained on the corpus,
                               default 4096) | path to a Hugging Face tokenizer.json (default byte)
  --cache-dir <dir>            trained tokenizers and token caches (default .data/corpus-cache)
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
  --dp-fragments <F>           diloco: Streaming DiLoCo, F contiguous fragments synced at staggered
                               iterations, each sync 1/F of the bytes; F <= H (default ${DEFAULT_DP.fragments})
  --dp-overlap <tau>           diloco: a fragment's outer update is applied tau iterations after its sync
                               starts, mixed 0.5/0.5 with the local weights; tau <= floor(H/F) (default ${DEFAULT_DP.overlap})
  --dp-merge <mix|delta>       diloco, tau >= 1: mix = 0.5 local + 0.5 global (Streaming DiLoCo's); delta = global +
                               the local progress since the sync started (default ${DEFAULT_DP.merge})
  --dp-warmup <W>              diloco: the first W iterations sync after every iteration, then every H;
                               F = 1, tau = 0 only (default 0). --dp-every 20 --dp-warmup 5 --outer-lr 1
                               --outer-momentum 0: +1.7% of exact at tiny (100 it., 9 seeds), +1.5% at
                               small (200 it., 6 seeds; docs/data-parallel.md, "Closing the gap at small")
  --assignment <file.json>     replay a recorded assignment of microbatch hops to replicas (default:
                               microbatch mb on replica mb mod R at every hop)
  --record-assignment <file>   write the assignment used, as JSON
  --eval-every <n>             validate every n steps (default 20)
  --eval-batches <n>           validation batches (default 4)
  --backend <wasm|cpu>         tfjs backend (default wasm: same CPU, 5-14x faster than cpu)
  --json                       print one JSON object per log line
  -h, --help                   this text
`;

export interface LocalTrainOptions extends Omit<RunSettings, 'dp'> {
  steps: number;
  data?: string;
  dataField?: string;
  tokenizer?: string;
  cacheDir?: string;
  /** Progress lines from preparing the data (tokenizer training, cache building). */
  log?: (line: string) => void;
  evalEvery: number;
  evalBatches: number;
  swap: boolean;
  /** SkipPipe: about this fraction of the stages skipped per training microbatch (default 0). */
  skipRatio?: number;
  scheduler?: SchedulerKind;
  /** The collision-aware scheduler's stage costs (default equal). */
  stageCosts?: StageCosts;
  /** Replay this recorded skip schedule. */
  recorded?: RecordedSchedule;
  /** Also validate with only these stages (a partial model). */
  evalStages?: number[];
  /** Called with the stages before they are disposed (sampling, tests). */
  onFinish?: (stages: Stage[]) => void;
  /** Stop (and validate) after the first step that ends past this many seconds (benchmarks: equal wall time). */
  maxSeconds?: number;
  onLog?: (line: { step: number; trainLoss: number; valLoss?: number; partialValLoss?: number; seconds: number }) => void;
  /** Called once the data is ready, with the model config (its vocabulary is the tokenizer's). */
  onStart?: (config: ResolvedConfig, tokenizer: string) => void;
  /** Replicas of every stage (default 1). */
  replicas?: number;
  /** How replicas combine (default DEFAULT_DP: exact). */
  dp?: Partial<DpSettings>;
  /** Which replica runs each hop (default roundRobinAssignment); checked against the run. */
  assignment?: unknown;
  /** diloco: values per sync chunk (default SYNC_CHUNK_VALUES). */
  syncChunkValues?: number;
  onSync?: (step: number, report: SyncReport) => void;
}

export interface LocalTrainResult {
  initialValLoss: number;
  finalValLoss: number;
  trainLosses: number[];
  valLosses: { step: number; loss: number }[];
  /** With evalStages: validation loss of the partial model at each validation. */
  partialValLosses: { step: number; loss: number }[];
  /** The skip schedule followed (null: full paths). */
  schedule: RecordedSchedule | null;
  /** UTF-8 bytes of text per token of this tokenizer on this corpus (loss per byte = loss / this). */
  bytesPerToken: number;
  tokenizer: string;
  vocabSize: number;
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
  if ((R > 1 || dp.mode !== 'exact') && (o.skipRatio || o.recorded)) throw new ConfigError('skip paths (--skip-ratio, --schedule-file) run with one replica per stage and --dp exact');
  const data = await prepareDataset({ path: o.data, field: o.dataField, tokenizer: o.tokenizer, seqLen: modelConfigOf(o).seqLen, cacheDir: o.cacheDir, log: o.log });
  const { dataset } = data;
  const cfg = modelConfigOf({ ...o, vocabSize: data.tokenizer.vocabSize });
  o.onStart?.(cfg, data.tokenizer.name);
  const run = { stages: o.stages, microbatches: o.microbatches, swap: o.swap };
  const assignment = o.assignment === undefined ? roundRobinAssignment(run, Array(o.stages).fill(R), o.steps) : checkAssignment(o.assignment, run, o.steps);
  const groups = Array.from({ length: o.stages }, (_, i) => Array.from({ length: assignment.replicas[i]! }, () => new Stage(cfg, i, { lr: o.lr })));
  const stages = groups.map((g) => g[0]!);
  const plain = groups.every((g) => g.length === 1) && dp.mode === 'exact';
  const outer = dp.mode === 'diloco' ? new DilocoReference(groups, startDiloco(groups, dp, o.syncChunkValues), dp) : null;
  const val = dataset.valBatches(o.evalBatches, o.batch);
  const t0 = Date.now();
  const wire = wireOf(o);
  const partial = o.evalStages ? evalOrder(o.evalStages, o.stages) : undefined;
  const skips = new SkipScheduleSource({ nStages: o.stages, microbatches: o.microbatches, seed: o.seed, swap: o.swap, skipRatio: o.skipRatio ?? 0, scheduler: o.scheduler ?? 'random', costs: o.stageCosts, recorded: o.recorded });
  if (o.recorded && o.recorded.iterations.length < o.steps) throw new ConfigError(`the recorded schedule holds ${o.recorded.iterations.length} iterations, fewer than --steps ${o.steps}`);
  const initialValLoss = evaluate(stages, val, wire);
  const valLosses = [{ step: 0, loss: initialValLoss }];
  const partialValLosses: { step: number; loss: number }[] = [];
  const evalPartial = (step: number) => {
    if (!partial) return undefined;
    const loss = evaluate(stages, val, wire, partial);
    partialValLosses.push({ step, loss });
    return loss;
  };
  const initialPartial = evalPartial(0);
  o.onLog?.({ step: 0, trainLoss: NaN, valLoss: initialValLoss, partialValLoss: initialPartial, seconds: 0 });
  const trainLosses: number[] = [];
  for (let step = 1; step <= o.steps; step++) {
    const it = step - 1;
    const batches = Array.from({ length: o.microbatches }, (_, mb) => dataset.trainBatch(o.seed, it, mb, o.batch));
    const orders = skips.ordersFor(it) ?? undefined;
    const { loss } = plain
      ? runIteration(stages, batches, { swap: o.swap, iteration: it, wire, orders })
      : runReplicatedIteration(groups, batches, { swap: o.swap, iteration: it, wire, hops: assignment.iterations[it]!, mode: dp.mode });
    if (outer) {
      // Not `o.onSync?.(step, ...)`: optional call skips evaluating its arguments, so without
      // an onSync listener the sync never ran.
      const report = outer.afterStep(it);
      if (report) o.onSync?.(step, report);
    }
    trainLosses.push(loss);
    const outOfTime = o.maxSeconds !== undefined && (Date.now() - t0) / 1000 >= o.maxSeconds;
    const evalNow = step % o.evalEvery === 0 || step === o.steps || outOfTime;
    // Between diloco syncs the replicas differ: validation reads replica 0 of every stage.
    const valLoss = evalNow ? evaluate(stages, val, wire) : undefined;
    if (valLoss !== undefined) valLosses.push({ step, loss: valLoss });
    const partialValLoss = evalNow ? evalPartial(step) : undefined;
    o.onLog?.({ step, trainLoss: loss, valLoss, partialValLoss, seconds: (Date.now() - t0) / 1000 });
    await tf.nextFrame?.();
    if (outOfTime) break;
  }
  o.onFinish?.(stages);
  const finalWeights = stages.map((s) => s.getWeights());
  groups.forEach((g) => g.forEach((s) => s.dispose()));
  data.close();
  return {
    initialValLoss,
    finalValLoss: valLosses[valLosses.length - 1]!.loss,
    trainLosses,
    valLosses,
    partialValLosses,
    schedule: skips.record(),
    bytesPerToken: data.meta.textBytes / data.meta.tokens,
    tokenizer: data.tokenizer.name,
    vocabSize: data.tokenizer.vocabSize,
    assignment,
    finalWeights,
  };
}

/** A comma-separated list of numbers from a flag (undefined when the flag is absent). */
function numberList(v: string | undefined, name: string): number[] | undefined {
  if (v === undefined) return undefined;
  const xs = v.split(',').map((x) => Number(x.trim()));
  if (xs.length === 0 || xs.some((x) => !Number.isFinite(x))) throw new ConfigError(`--${name} must be comma-separated numbers, got "${v}"`);
  return xs;
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
      'data-field': { type: 'string' },
      tokenizer: { type: 'string' },
      'cache-dir': { type: 'string' },
      'eval-every': { type: 'string' },
      'eval-batches': { type: 'string' },
      json: { type: 'boolean' },
      backend: { type: 'string' },
      'skip-ratio': { type: 'string' },
      schedule: { type: 'string' },
      'stage-ms': { type: 'string' },
      'link-ms': { type: 'string' },
      'schedule-file': { type: 'string' },
      'record-schedule': { type: 'string' },
      'eval-stages': { type: 'string' },
      sample: { type: 'string' },
      replicas: { type: 'string' },
      dp: { type: 'string' },
      'dp-every': { type: 'string' },
      'outer-lr': { type: 'string' },
      'outer-momentum': { type: 'string' },
      'dp-wire': { type: 'string' },
      'dp-fragments': { type: 'string' },
      'dp-overlap': { type: 'string' },
      'dp-merge': { type: 'string' },
      'dp-warmup': { type: 'string' },
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
  const preset = values.preset ?? DEFAULT_SETTINGS.preset;
  const opts: LocalTrainOptions = {
    ...DEFAULT_SETTINGS,
    preset,
    stages: num(values.stages, PRESET_STAGES[preset as PresetName] ?? DEFAULT_SETTINGS.stages, 'stages'),
    microbatches: num(values.microbatches, DEFAULT_SETTINGS.microbatches, 'microbatches'),
    batch: num(values.batch, DEFAULT_SETTINGS.batch, 'batch'),
    seqLen: values.seq ? num(values.seq, 0, 'seq') : undefined,
    lr: num(values.lr, DEFAULT_SETTINGS.lr, 'lr'),
    seed: num(values.seed, DEFAULT_SETTINGS.seed, 'seed'),
    recovery: (values.swap ? 'checkfree+' : 'checkfree') as RecoveryStrategy,
    wire: (values.wire ?? wireOf(DEFAULT_SETTINGS)) as WireEncoding,
    steps: num(values.steps, 200, 'steps'),
    data: values.data,
    dataField: values['data-field'],
    tokenizer: values.tokenizer,
    cacheDir: values['cache-dir'],
    log: (line) => console.log(line),
    evalEvery: num(values['eval-every'], 20, 'eval-every'),
    evalBatches: num(values['eval-batches'], 4, 'eval-batches'),
    swap: values.swap ?? false,
    skipRatio: num(values['skip-ratio'], 0, 'skip-ratio'),
    scheduler: schedulerOf(values.schedule),
    stageCosts: costsOf(values['stage-ms'], values['link-ms'], num(values.stages, DEFAULT_SETTINGS.stages, 'stages')),
    recorded: values['schedule-file'] ? readSchedule(values['schedule-file']) : undefined,
    evalStages: numberList(values['eval-stages'], 'eval-stages'),
    onFinish: (stages) => {
      const n = num(values.sample, 0, 'sample');
      if (n <= 0) return;
      const prompt = [...new TextEncoder().encode('Call me ')];
      const text = (order?: number[]) => new TextDecoder().decode(Uint8Array.from(sampleGreedy(stages, prompt, n, modelConfigOf(opts).seqLen, order)));
      console.log(`sample (all stages): ${JSON.stringify(text())}`);
      if (opts.evalStages) console.log(`sample (stages ${opts.evalStages.join(',')}): ${JSON.stringify(text(evalOrder(opts.evalStages, opts.stages)))}`);
    },
    replicas: num(values.replicas, 1, 'replicas'),
    dp: {
      mode: (values.dp ?? DEFAULT_DP.mode) as DpMode,
      every: num(values['dp-every'], DEFAULT_DP.every, 'dp-every'),
      outerLr: num(values['outer-lr'], DEFAULT_DP.outerLr, 'outer-lr'),
      outerMomentum: num(values['outer-momentum'], DEFAULT_DP.outerMomentum, 'outer-momentum'),
      wire: (values['dp-wire'] ?? DEFAULT_DP.wire) as WireEncoding,
      fragments: num(values['dp-fragments'], DEFAULT_DP.fragments, 'dp-fragments'),
      overlap: num(values['dp-overlap'], DEFAULT_DP.overlap, 'dp-overlap'),
      merge: (values['dp-merge'] ?? DEFAULT_DP.merge) as StreamingMerge,
      warmup: num(values['dp-warmup'], 0, 'dp-warmup'),
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
            (l.partialValLoss !== undefined ? `  val(stages ${opts.evalStages!.join(',')}) ${l.partialValLoss.toFixed(4)}` : '') +
            `  ${l.seconds.toFixed(1)}s`,
        );
    },
  };
  const cfg = (checkSettings({ ...opts, dp: { ...DEFAULT_DP, ...opts.dp } }), modelConfigOf(opts));
  console.log(
    `local trainer: preset ${opts.preset} d_model ${cfg.dModel} layers ${cfg.nLayers} stages ${opts.stages} seq ${cfg.seqLen} ` +
      `microbatches ${opts.microbatches}x${opts.batch} lr ${opts.lr} wire ${wireOf(opts)} backend ${tf.getBackend()}${opts.swap ? ' (swapped order)' : ''}`,
  );
  if (opts.skipRatio || opts.recorded) console.log(`skip paths: ${opts.recorded ? `recorded schedule ${values['schedule-file']}` : `--skip-ratio ${opts.skipRatio}, ${opts.scheduler} schedule`}`);
  const dpLine = opts.dp!.mode === 'diloco' ? `diloco every ${opts.dp!.every} outer lr ${opts.dp!.outerLr} momentum ${opts.dp!.outerMomentum} dp-wire ${opts.dp!.wire}${(opts.dp!.fragments ?? 1) > 1 || (opts.dp!.overlap ?? 0) > 0 ? ` fragments ${opts.dp!.fragments} overlap ${opts.dp!.overlap} merge ${opts.dp!.merge ?? 'mix'}` : ''}` : 'exact';
  console.log(`replicas ${opts.replicas} per stage, dp ${dpLine}`);
  const r = await trainLocal({
    ...opts,
    onStart: (c, tokenizer) => {
      console.log(`tokenizer ${tokenizer}: vocabulary ${c.vocabSize}`);
      console.log(formatModelMemory(modelMemory(c, { batch: opts.batch, microbatches: opts.microbatches })));
    },
  });
  if (values['record-assignment']) writeFileSync(values['record-assignment'], JSON.stringify(r.assignment));
  const drop = (1 - r.finalValLoss / r.initialValLoss) * 100;
  console.log(`validation loss ${r.initialValLoss.toFixed(4)} -> ${r.finalValLoss.toFixed(4)} (${drop.toFixed(1)}% lower)`);
  const lastPartial = r.partialValLosses[r.partialValLosses.length - 1];
  if (lastPartial) console.log(`validation loss with stages ${opts.evalStages!.join(',')}: ${lastPartial.loss.toFixed(4)} (perplexity ${Math.exp(lastPartial.loss - r.finalValLoss).toFixed(3)}x the full model's)`);
  if (values['record-schedule'] && r.schedule) {
    writeFileSync(values['record-schedule'], JSON.stringify(r.schedule));
    console.log(`skip schedule written to ${values['record-schedule']}`);
  }
}

function schedulerOf(v: string | undefined): SchedulerKind {
  if (v === undefined) return 'random';
  if (!(SCHEDULERS as readonly string[]).includes(v)) throw new ConfigError(`--schedule must be one of ${SCHEDULERS.join(', ')}, got "${v}"`);
  return v as SchedulerKind;
}

function costsOf(stageMs: string | undefined, linkMs: string | undefined, nStages: number): StageCosts | undefined {
  const f = numberList(stageMs, 'stage-ms');
  if (!f && linkMs === undefined) return undefined;
  const forward = f ?? new Array<number>(nStages).fill(1);
  if (forward.length !== nStages || forward.some((x) => x < 0)) throw new ConfigError(`--stage-ms needs ${nStages} numbers >= 0 (one per stage)`);
  const link = linkMs === undefined ? 0 : Number(linkMs);
  if (!Number.isFinite(link) || link < 0) throw new ConfigError(`--link-ms must be a number >= 0, got "${linkMs}"`);
  return { forwardMs: forward, backwardMs: forward.map((x) => 2 * x), linkMs: Array.from({ length: nStages }, (_, a) => Array.from({ length: nStages }, (_, b) => (a === b ? 0 : link))) };
}

function readSchedule(path: string): RecordedSchedule {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read --schedule-file ${path}: ${(e as Error).message}`);
  }
  return parseRecordedSchedule(text);
}

const isMain = import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('trainer/cli.ts');
if (isMain) {
  main().catch((e: unknown) => {
    if (e instanceof ConfigError || e instanceof AssignmentError || e instanceof DataError || e instanceof TokenizerError || e instanceof ScheduleFileError || e instanceof SkipRuleError || (e as Error)?.name === 'TypeError') {
      console.error(`error: ${(e as Error).message}`);
      process.exit(2);
    }
    throw e;
  });
}
