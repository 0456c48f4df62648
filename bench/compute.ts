/**
 * Roofline of one pipeline stage: how close a stage's forward and backward run to its backend's
 * own matmul rate. Per backend, preset and stage position (first, middle, last): forward,
 * backward and Adam-step ms, the stage's matmul FLOPs per microbatch (counted from the config),
 * the achieved GFLOP/s, the same backend's GFLOP/s on the stage's [B*T, d] x [d, 4d] product
 * measured in the same run, their ratio, and the memory a microbatch in flight holds.
 *
 *   npm run bench:compute
 *   npm run bench:compute -- --presets small,base --backends wasm --reps 3 --modes stash
 *
 * Backends: `wasm` and `cpu` (tfjs in Node) and `webgpu` through the `webgpu` npm package (Dawn;
 * not a dependency of this repo: `npm i --no-save webgpu@0.6.2`, or WEBGPU_PACKAGE=<its folder>;
 * run with LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json
 * to get SwiftShader where there is no GPU). The browser's own figures: bench/compute-browser.ts.
 * Compared things (stash vs recompute) are measured in one run, alternating order over rounds;
 * every figure is a median.
 */
import * as tf from '../shared/model/tf.js';
import { configForStages, getPreset, presetNames, type ResolvedConfig } from '../shared/model/config.js';
import { BACKWARD_MODES, type BackwardMode } from '../shared/model/stage.js';
import { measureMatmul, measureRate, measureStage, stageFlops, type StageTiming } from '../shared/model/roofline.js';
import { useNodeBackend } from '../trainer/node-backend.js';
import { flags, fmt, fmtBytes, machine, median, table, loadLine } from './util.js';

const HELP = `npm run bench:compute -- [options]
  --presets tiny,small,base   presets to run (default: all; base is skipped on a software WebGPU adapter unless named)
  --backends wasm,webgpu      Node backends: wasm, cpu, webgpu (Dawn; default: wasm, and webgpu when it loads)
  --positions first,middle,last  stage positions (of --stages 4)
  --modes stash,recompute     backward modes (default both; stash is the Stage default)
  --reps n                    timed repetitions per measurement (default: tiny 5, small 3, base 1)
  --rounds n                  rounds, alternating the order of modes (default 2; base 1)
  --batch n                   sequences per microbatch (default 4)
  --stages n                  pipeline stages the preset is split into (default 4)`;

type Backend = 'wasm' | 'cpu' | 'webgpu';
const POSITIONS = { first: (_s: number) => 0, middle: (_s: number) => 1, last: (s: number) => s - 1 } as const;
type Position = keyof typeof POSITIONS;

function list(v: string | boolean | undefined, fallback: string[]): string[] {
  return typeof v === 'string' ? v.split(',').map((x) => x.trim()).filter(Boolean) : fallback;
}

/** Loads Dawn's navigator.gpu and tfjs's webgpu backend; returns the reason when it cannot. */
async function loadWebGpu(): Promise<{ ok: true; adapter: string; software: boolean } | { ok: false; reason: string }> {
  let mod: { create: (o: string[]) => unknown; globals: Record<string, unknown> };
  const from = process.env['WEBGPU_PACKAGE'];
  try {
    mod = from ? await import(`${from.replace(/\/$/, '')}/index.js`) : await import(/* not a dependency */ 'webgpu' as string);
  } catch (e) {
    return { ok: false, reason: `the webgpu (Dawn) package is not installed (${(e as Error).message.split('\n')[0]}); npm i --no-save webgpu@0.6.2 or set WEBGPU_PACKAGE` };
  }
  Object.assign(globalThis, mod.globals);
  const gpu = mod.create([]) as { requestAdapter(): Promise<{ info?: { vendor?: string; architecture?: string; description?: string } } | null> };
  Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  const adapter = await gpu.requestAdapter();
  if (!adapter) return { ok: false, reason: 'Dawn found no GPU adapter (for SwiftShader set LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json)' };
  await import('@tensorflow/tfjs-backend-webgpu');
  const label = [adapter.info?.vendor, adapter.info?.architecture, adapter.info?.description].filter(Boolean).join(' ') || 'unknown adapter';
  return { ok: true, adapter: label, software: /swiftshader|llvmpipe|software/i.test(label) };
}

async function use(backend: Backend): Promise<void> {
  if (backend === 'webgpu') {
    if (!(await tf.setBackend('webgpu'))) throw new Error('tfjs webgpu backend failed to initialise');
    await tf.ready();
  } else await useNodeBackend(backend);
}

interface Row {
  preset: string;
  position: Position;
  index: number;
  mode: BackwardMode;
  timing: StageTiming;
  cfg: ResolvedConfig;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help')) {
    console.log(HELP);
    return;
  }
  const f = flags(argv, { presets: 'string', backends: 'string', positions: 'string', modes: 'string', reps: 'string', rounds: 'string', batch: 'string', stages: 'string', help: 'boolean' });
  const presets = list(f.presets, presetNames());
  const presetsNamed = typeof f.presets === 'string';
  const positions = list(f.positions, Object.keys(POSITIONS)) as Position[];
  const modes = list(f.modes, [...BACKWARD_MODES]) as BackwardMode[];
  const batch = Number(f.batch ?? 4);
  const stages = Number(f.stages ?? 4);
  for (const p of presets) getPreset(p);
  for (const p of positions) if (!(p in POSITIONS)) throw new Error(`unknown position "${p}"; choose from first, middle, last`);
  for (const m of modes) if (!BACKWARD_MODES.includes(m)) throw new Error(`unknown mode "${m}"; choose from ${BACKWARD_MODES.join(', ')}`);

  console.log(`compute benchmark  ${new Date().toISOString()}  ${machine()}`);
  console.log(`tfjs ${tf.version_core}; batch ${batch}, ${stages} stages; matmul FLOPs counted from the config (backward = 2x forward + embedding gradient)`);
  const wanted = list(f.backends, ['wasm', 'webgpu']) as Backend[];
  const backends: { name: Backend; note: string; software: boolean }[] = [];
  for (const b of wanted) {
    if (b === 'webgpu') {
      const w = await loadWebGpu();
      if (!w.ok) console.log(`webgpu: skipped: ${w.reason}`);
      else backends.push({ name: b, note: `Dawn, adapter ${w.adapter}`, software: w.software });
    } else if (b === 'wasm' || b === 'cpu') backends.push({ name: b, note: 'tfjs in Node', software: false });
    else throw new Error(`unknown backend "${b}"; choose from wasm, cpu, webgpu`);
  }

  for (const be of backends) {
    await use(be.name);
    const extra = be.name === 'wasm' ? `, SIMD ${String(tf.env().getBool('WASM_HAS_SIMD_SUPPORT'))}` : '';
    console.log(`\n== ${be.name} (${be.note}${extra}) ==`);
    const rows: Row[] = [];
    const mmRows: (string | number)[][] = [];
    const rate = new Map<string, number>();
    for (const preset of presets) {
      if (be.software && preset === 'base' && !presetsNamed) {
        console.log('base: skipped on a software adapter (minutes per repetition); name it in --presets to run it');
        continue;
      }
      const cfg = configForStages(getPreset(preset), stages);
      const reps = Number(f.reps ?? (preset === 'tiny' ? 5 : preset === 'small' ? 3 : 1));
      const rounds = Number(f.rounds ?? (preset === 'base' ? 1 : 2));
      const N = batch * cfg.seqLen;
      const D = cfg.dModel;
      const F = cfg.ffHidden;
      const H = cfg.nHeads;
      const K = D / H;
      // The backend's rate on the stage's own shapes, measured before and after its runs.
      const mmReps = Math.max(3, reps);
      const shapes: [string, () => Promise<number>][] = [
        [`[${N},${D}]x[${D},${F}]`, () => measureMatmul(N, D, F, { reps: mmReps })],
        [`[${N},${F}]x[${D},${F}]^T (dX)`, () => measureMatmul(N, F, D, { reps: mmReps, transposeB: true })],
        [`[${N},${D}]^T x[${N},${F}] (dW)`, () => measureMatmul(D, N, F, { reps: mmReps, transposeA: true })],
      ];
      const before = await shapes[0]![1]();
      for (const [name, run] of shapes.slice(1)) mmRows.push([preset, name, fmt(await run(), 2)]);
      const attn = await batchedRate(batch * H, cfg.seqLen, K, mmReps);
      mmRows.push([preset, `[${batch * H},${cfg.seqLen},${K}]x[${batch * H},${K},${cfg.seqLen}] batched (attention)`, fmt(attn, 2)]);
      const raw = await rawFlagRate(N, F, D, mmReps);
      mmRows.push([preset, `[${N},${F}]x[${D},${F}]^T with tf.matMul's transpose flag`, fmt(raw, 2)]);
      const timings = new Map<string, StageTiming[]>();
      for (const position of positions) {
        const index = POSITIONS[position](stages);
        for (let r = 0; r < rounds; r++) {
          for (const mode of r % 2 === 0 ? modes : [...modes].reverse()) {
            const t = await measureStage(cfg, index, { batch, reps, backward: mode });
            const key = `${position}|${mode}`;
            timings.set(key, [...(timings.get(key) ?? []), t]);
          }
        }
        for (const mode of modes) {
          const ts = timings.get(`${position}|${mode}`)!;
          rows.push({
            preset,
            position,
            index,
            mode,
            cfg,
            timing: {
              forwardMs: median(ts.map((t) => t.forwardMs)),
              backwardMs: median(ts.map((t) => t.backwardMs)),
              stepMs: median(ts.map((t) => t.stepMs)),
              stashBytes: ts[0]!.stashBytes,
              peakBytes: ts[0]!.peakBytes,
            },
          });
        }
      }
      const after = await shapes[0]![1]();
      rate.set(preset, median([before, after]));
      mmRows.unshift([preset, `${shapes[0]![0]} (the reference: median of before and after)`, `${fmt(before, 2)} / ${fmt(after, 2)}`]);
    }
    console.log('matmul GFLOP/s on the stages\' shapes (through shared/model/matmul.ts unless said):');
    console.log(table(['preset', 'product', 'GFLOP/s'], mmRows));
    console.log('\nstage forward / backward / step (ms, medians); achieved = matmul FLOPs of F+B / (F+B time); ratio = achieved / the reference matmul rate:');
    console.log(
      table(
        ['preset', 'stage', 'backward', 'fwd ms', 'bwd ms', 'bwd/fwd', 'step ms', 'GFLOP F+B', 'GFLOP/s', 'mm GFLOP/s', 'ratio', 'stash / mb', 'peak F+B'],
        rows.map((r) => {
          const fl = stageFlops(r.cfg, r.index, batch);
          const ms = r.timing.forwardMs + r.timing.backwardMs;
          const achieved = (fl.forward + fl.backward) / ms / 1e6;
          const mmRate = rate.get(r.preset)!;
          return [
            r.preset,
            `${r.position} (${r.index})`,
            r.mode,
            fmt(r.timing.forwardMs, 1),
            fmt(r.timing.backwardMs, 1),
            `${fmt(r.timing.backwardMs / r.timing.forwardMs, 2)}x`,
            fmt(r.timing.stepMs, 1),
            fmt((fl.forward + fl.backward) / 1e9, 3),
            fmt(achieved, 2),
            fmt(mmRate, 2),
            fmt(achieved / mmRate, 2),
            fmtBytes(r.timing.stashBytes),
            fmtBytes(r.timing.peakBytes),
          ];
        }),
      ),
    );
  }
  console.log(`\ntargets (printed, not asserted): bwd/fwd <= 2.5 for small and base; ratio >= 0.5 for base on wasm`);
  console.log(`end: ${loadLine()}`);
}

/** GFLOP/s of the batched product attention's scores use ([BH,T,K] x [BH,K,T]). */
async function batchedRate(bh: number, T: number, K: number, reps: number): Promise<number> {
  const a = tf.randomNormal([bh, T, K]);
  const b = tf.randomNormal([bh, K, T]);
  try {
    return await measureRate(() => tf.matMul(a, b), 2 * bh * T * T * K, reps);
  } finally {
    tf.dispose([a, b]);
  }
}

/** GFLOP/s of tf.matMul with transposeB = true (what tf.grads' matmul gradient calls). */
async function rawFlagRate(m: number, k: number, n: number, reps: number): Promise<number> {
  const a = tf.randomNormal([m, k]);
  const b = tf.randomNormal([n, k]);
  try {
    return await measureRate(() => tf.matMul(a, b, false, true), 2 * m * k * n, reps);
  } finally {
    tf.dispose([a, b]);
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
