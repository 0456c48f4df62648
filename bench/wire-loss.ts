/**
 * Loss study of the wire encodings: the same run (same seed, data and schedule) trained with
 * activations and gradients sent as f32, f16 and int8, in the local trainer (long run) and in a
 * Node swarm over real sockets (shorter run, 4 Node volunteers on tfjs wasm). Prints the
 * validation loss after N iterations per encoding, its difference to f32, and for the swarm the
 * difference to the local trainer with the same encoding (the quantisation is deterministic).
 *
 *   npm run bench:wire-loss                               (tiny; local 200 iterations, swarm 20)
 *   npm run bench:wire-loss -- --steps 400 --swarm-steps 0 (local trainer only)
 *   npm run bench:wire-loss -- --preset small --steps 100 --swarm-steps 10
 */
import { Coordinator, DEFAULT_COORDINATOR } from '../coordinator/server.js';
import { startNodeVolunteer, type NodeVolunteer } from '../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../shared/run-settings.js';
import { WIRE_ENCODINGS, type WireEncoding } from '../shared/protocol/index.js';
import { trainLocal, type LocalTrainResult } from '../trainer/cli.js';
import { useNodeBackend } from '../trainer/node-backend.js';
import { flags, fmt, machine, mean, table, loadLine } from './util.js';
import { until } from '../testing/until.js';

const HELP = `Usage: npm run bench:wire-loss -- [options]
  --preset <p>          model (default tiny)
  --steps <n>           local trainer iterations (default 200)
  --swarm-steps <n>     Node swarm iterations (default 20; 0 = skip the swarm)
  --wires <w,...>       encodings (default ${WIRE_ENCODINGS.join(',')}; f32 is always run as the reference)
  --stages, --microbatches, --batch, --seed, --lr   run settings (default 4, 4, 4, 1234, 3e-3)
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
  await useNodeBackend('wasm');
  console.log(`wire loss study  ${new Date().toISOString()}  ${machine()}`);
  console.log(
    `preset ${settings.preset}, ${settings.stages} stages, ${settings.microbatches} microbatches x batch ${settings.batch}, lr ${settings.lr}, seed ${settings.seed}; ` +
      `validation on ${evalBatches} batches; every run starts from the same weights and sees the same data`,
  );

  const local: Partial<Record<WireEncoding, LocalTrainResult>> = {};
  const rows: string[][] = [];
  for (const wire of wires) {
    const evalEvery = swarmSteps > 0 && swarmSteps < steps ? swarmSteps : steps;
    local[wire] = await trainLocal({ ...settings, wire, steps, evalEvery, evalBatches, swap: false });
  }
  const ref = local.f32!;
  for (const wire of wires) {
    const r = local[wire]!;
    const lastTrain = mean(r.trainLosses.slice(-10));
    rows.push([wire, fmt(r.initialValLoss, 4), fmt(r.finalValLoss, 4), pct(r.finalValLoss, ref.finalValLoss), fmt(lastTrain, 4), pct(lastTrain, mean(ref.trainLosses.slice(-10)))]);
  }
  console.log(`\nlocal trainer, ${steps} iterations:`);
  console.log(table(['wire', 'val loss at 0', `val loss at ${steps}`, 'vs f32', 'train loss (last 10)', 'vs f32'], rows));

  if (swarmSteps > 0) {
    const srows: string[][] = [];
    let swarmF32 = NaN;
    for (const wire of wires) {
      const s = await swarmRun({ ...settings, wire }, swarmSteps, evalBatches);
      if (wire === 'f32') swarmF32 = s.val;
      const localVal = local[wire]!.valLosses.find((v) => v.step === swarmSteps)?.loss ?? NaN;
      const maxTrainDiff = Math.max(...s.train.map((l, i) => Math.abs(l - local[wire]!.trainLosses[i]!) / local[wire]!.trainLosses[i]!));
      srows.push([wire, fmt(s.val, 4), pct(s.val, swarmF32), fmt(localVal, 4), pct(s.val, localVal), fmt(maxTrainDiff, 7)]);
    }
    console.log(`\nNode swarm (${settings.stages} Node volunteers over socket.io), ${swarmSteps} iterations, against the local trainer at the same iteration:`);
    console.log(table(['wire', `swarm val at ${swarmSteps}`, 'vs swarm f32', 'local val', 'swarm vs local', 'max rel. train-loss diff'], srows));
  }
  const int8 = local.int8;
  if (int8) {
    const d = Math.abs(int8.finalValLoss - ref.finalValLoss) / ref.finalValLoss;
    console.log(`\ntarget: int8 validation loss within 1% of f32 after ${steps} iterations: ${fmt(d * 100, 3)}% -> ${d <= 0.01 ? 'met' : 'NOT met'}`);
  }
  console.log(`end: ${loadLine()}`);
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
