/**
 * Loss study of the wire encodings: the same run (same seed, data and schedule) trained with
 * activations and gradients sent as f32, f16 and int8, in the local trainer (long run) and in a
 * Node swarm over real sockets (shorter run, 4 Node volunteers on tfjs wasm). Prints the
 * validation loss after N iterations per encoding, its difference to f32, and for the swarm the
 * difference to the local trainer with the same encoding (the quantisation is deterministic).
 *
 * One run's final loss says little: two runs whose activations differ by rounding separate
 * chaotically as training goes on. `--seeds` repeats the local study for several seeds (each
 * seed sets both the initial weights and the data order) and prints, per encoding, the gap to
 * f32 of every seed, its mean and standard deviation over seeds, and the gap between the
 * seed-mean losses; the target is judged on the latter. The gap at each validation point shows
 * whether it grows steadily (a systematic effect) or wanders (noise).
 *
 *   npm run bench:wire-loss                               (tiny; local 200 iterations, swarm 20)
 *   npm run bench:wire-loss -- --steps 400 --swarm-steps 0 (local trainer only)
 *   npm run bench:wire-loss -- --seeds 1234,1,2,3,4 --swarm-steps 0   (the seed study)
 *   npm run bench:wire-loss -- --preset small --steps 100 --swarm-steps 10
 */
import { Coordinator, DEFAULT_COORDINATOR } from '../coordinator/server.js';
import { startNodeVolunteer, type NodeVolunteer } from '../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../shared/run-settings.js';
import { WIRE_ENCODINGS, type WireEncoding } from '../shared/protocol/index.js';
import { trainLocal, type LocalTrainResult } from '../trainer/cli.js';
import { useNodeBackend } from '../trainer/node-backend.js';
import { flags, fmt, machine, mean, table, loadLine, list } from './util.js';
import { until } from '../testing/until.js';

const HELP = `Usage: npm run bench:wire-loss -- [options]
  --preset <p>          model (default tiny)
  --steps <n>           local trainer iterations (default 200)
  --swarm-steps <n>     Node swarm iterations (default 20; 0 = skip the swarm)
  --wires <w,...>       encodings (default ${WIRE_ENCODINGS.join(',')}; f32 is always run as the reference)
  --stages, --microbatches, --batch, --seed, --lr   run settings (default 4, 4, 4, 1234, 3e-3)
  --seeds <s,...>       repeat the local study for these seeds and report the mean over seeds
                        (default: --seed only); the swarm runs with the first
  --eval-points <n>     validation points in the local runs (default 4; more cost time)
  --eval-batches <n>    validation batches (default 8)
  -h, --help            this text
`;

async function swarmRun(settings: RunSettings, steps: number, evalBatches: number): Promise<{ train: number[]; val: number }> {
  const coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, evalEvery: steps, evalBatches, maxIterations: steps, clientDir: '/nonexistent', dataDir: null });
  const url = await coord.listen();
  const vols: NodeVolunteer[] = [];
  try {
    for (let i = 0; i < settings.stages; i++) vols.push(await startNodeVolunteer(url, { name: `loss${i}` }));
    await until(() => coord.scheduler.iteration >= steps && coord.scheduler.lastValLoss !== null, `${steps} swarm iterations`, 1_800_000);
    return { train: coord.scheduler.history.map((h) => h.trainLoss), val: coord.scheduler.lastValLoss! };
  } finally {
    for (const v of vols) v.kill();
    await coord.close();
  }
}

const pct = (a: number, b: number) => `${a >= b ? '+' : ''}${fmt(((a - b) / b) * 100, 3)}%`;

async function main(): Promise<void> {
  const f = flags(process.argv.slice(2), {
    preset: 'string',
    steps: 'string',
    'swarm-steps': 'string',
    wires: 'string',
    stages: 'string',
    microbatches: 'string',
    batch: 'string',
    seed: 'string',
    lr: 'string',
    seeds: 'string',
    'eval-points': 'string',
    'eval-batches': 'string',
    help: 'boolean',
  });
  if (f.help) return void process.stdout.write(HELP);
  const steps = Number(f.steps ?? 200);
  const swarmSteps = Number(f['swarm-steps'] ?? 20);
  const evalBatches = Number(f['eval-batches'] ?? 8);
  const asked = String(f.wires ?? WIRE_ENCODINGS.join(',')).split(',') as WireEncoding[];
  for (const w of asked) if (!WIRE_ENCODINGS.includes(w)) throw new Error(`unknown wire "${w}"`);
  const wires = ['f32' as const, ...asked.filter((w) => w !== 'f32')];
  const settings: RunSettings = {
    ...DEFAULT_SETTINGS,
    preset: String(f.preset ?? 'tiny'),
    stages: Number(f.stages ?? 4),
    microbatches: Number(f.microbatches ?? 4),
    batch: Number(f.batch ?? 4),
    seed: Number(f.seed ?? DEFAULT_SETTINGS.seed),
    lr: Number(f.lr ?? DEFAULT_SETTINGS.lr),
    recovery: 'checkfree',
  };
  const seeds = list(f.seeds, [String(settings.seed)]).map(Number);
  await useNodeBackend('wasm');
  console.log(`wire loss study  ${new Date().toISOString()}  ${machine()}`);
  console.log(
    `preset ${settings.preset}, ${settings.stages} stages, ${settings.microbatches} microbatches x batch ${settings.batch}, lr ${settings.lr}, seed${seeds.length > 1 ? 's' : ''} ${seeds.join(', ')}; ` +
      `validation on ${evalBatches} batches; every run starts from the same weights and sees the same data`,
  );

  const evalPoints = Math.max(1, Number(f['eval-points'] ?? 4));
  // Validation every `evalEvery` iterations (and at the swarm's last iteration, to compare with it).
  const evalEvery = swarmSteps > 0 && swarmSteps < steps ? swarmSteps : Math.max(1, Math.ceil(steps / evalPoints));
  /** local[seed][wire] */
  const bySeed = new Map<number, Partial<Record<WireEncoding, LocalTrainResult>>>();
  for (const seed of seeds) {
    const runs: Partial<Record<WireEncoding, LocalTrainResult>> = {};
    for (const wire of wires) runs[wire] = await trainLocal({ ...settings, seed, wire, steps, evalEvery, evalBatches, swap: false });
    bySeed.set(seed, runs);
    const ref = runs.f32!;
    const rows: string[][] = [];
    for (const wire of wires) {
      const r = runs[wire]!;
      const lastTrain = mean(r.trainLosses.slice(-10));
      rows.push([wire, fmt(r.initialValLoss, 4), fmt(r.finalValLoss, 4), pct(r.finalValLoss, ref.finalValLoss), fmt(lastTrain, 4), pct(lastTrain, mean(ref.trainLosses.slice(-10)))]);
    }
    console.log(`\nlocal trainer, seed ${seed}, ${steps} iterations:`);
    console.log(table(['wire', 'val loss at 0', `val loss at ${steps}`, 'vs f32', 'train loss (last 10)', 'vs f32'], rows));
  }
  const local = bySeed.get(seeds[0]!)!;
  const ref = local.f32!;
  /** Relative gap of `wire` to f32 at validation point `i`, for every seed. */
  const gaps = (wire: WireEncoding, i: number) => seeds.map((s) => {
    const r = bySeed.get(s)!;
    return (r[wire]!.valLosses[i]!.loss - r.f32!.valLosses[i]!.loss) / r.f32!.valLosses[i]!.loss;
  });
  const sd = (xs: number[]) => (xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1)) : NaN);
  const p100 = (x: number) => `${x >= 0 ? '+' : ''}${fmt(x * 100, 3)}%`;
  const meanFinal = (wire: WireEncoding) => mean(seeds.map((s) => bySeed.get(s)![wire]!.finalValLoss));
  const points = ref.valLosses.map((v) => v.step);
  if (seeds.length > 1) {
    const srows: string[][] = [];
    for (const wire of wires.filter((w) => w !== 'f32')) {
      const last = gaps(wire, points.length - 1);
      srows.push([
        wire,
        fmt(meanFinal(wire), 4),
        pct(meanFinal(wire), meanFinal('f32')),
        p100(mean(last)),
        fmt(sd(last) * 100, 3),
        `${p100(Math.min(...last))} .. ${p100(Math.max(...last))}`,
        `${last.filter((g) => Math.abs(g) <= 0.01).length}/${seeds.length}`,
      ]);
    }
    console.log(`\nover ${seeds.length} seeds (${seeds.join(', ')}), val loss after ${steps} iterations (f32 mean ${fmt(meanFinal('f32'), 4)}):`);
    console.log(table(['wire', 'mean val', 'mean vs f32 mean', 'mean gap', 'sd of gap (pts)', 'gap range', 'seeds within 1%'], srows));
  }
  const trows: string[][] = [];
  for (const wire of wires.filter((w) => w !== 'f32')) trows.push([wire, ...points.slice(1).map((_, i) => `${p100(mean(gaps(wire, i + 1)))}${seeds.length > 1 ? ` ±${fmt(sd(gaps(wire, i + 1)) * 100, 2)}` : ''}`)]);
  console.log(`\ngap to f32 of the validation loss as training goes on${seeds.length > 1 ? ' (mean ± sd over seeds, percent)' : ''}:`);
  console.log(table(['wire', ...points.slice(1).map((p) => `at ${p}`)], trows));

  if (swarmSteps > 0) {
    const srows: string[][] = [];
    let swarmF32 = NaN;
    for (const wire of wires) {
      const s = await swarmRun({ ...settings, seed: seeds[0]!, wire }, swarmSteps, evalBatches);
      if (wire === 'f32') swarmF32 = s.val;
      const localVal = local[wire]!.valLosses.find((v) => v.step === swarmSteps)?.loss ?? NaN;
      const maxTrainDiff = Math.max(...s.train.map((l, i) => Math.abs(l - local[wire]!.trainLosses[i]!) / local[wire]!.trainLosses[i]!));
      srows.push([wire, fmt(s.val, 4), pct(s.val, swarmF32), fmt(localVal, 4), pct(s.val, localVal), fmt(maxTrainDiff, 7)]);
    }
    console.log(`\nNode swarm (${settings.stages} Node volunteers over socket.io), ${swarmSteps} iterations, against the local trainer at the same iteration:`);
    console.log(table(['wire', `swarm val at ${swarmSteps}`, 'vs swarm f32', 'local val', 'swarm vs local', 'max rel. train-loss diff'], srows));
  }
  if (local.int8) {
    const d = Math.abs(meanFinal('int8') - meanFinal('f32')) / meanFinal('f32');
    const what = seeds.length > 1 ? `mean over ${seeds.length} seeds` : `seed ${seeds[0]}`;
    console.log(`\ntarget: int8 validation loss within 1% of f32 after ${steps} iterations (${what}): ${fmt(d * 100, 3)}% -> ${d <= 0.01 ? 'met' : 'NOT met'}`);
  }
  console.log(`end: ${loadLine()}`);
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
