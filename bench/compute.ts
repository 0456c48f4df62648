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
 * with LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json
 * it finds SwiftShader where there is no GPU). The browser's figures: bench/compute-browser.ts.
 * The measuring itself is bench/compute-run.ts.
 */
import * as tf from '../shared/model/tf.js';
import { getPreset, presetNames } from '../shared/model/config.js';
import { BACKWARD_MODES, type BackwardMode } from '../shared/model/stage.js';
import { useNodeBackend } from '../trainer/node-backend.js';
import { POSITIONS, runBackend, stageTable, TABLE_NOTES, type Position } from './compute-run.js';
import { flags, list, machine, table, loadLine } from './util.js';

export const HELP = `npm run bench:compute -- [options]
  --presets tiny,small,base      presets (default all; base is skipped on a software WebGPU adapter unless named)
  --backends wasm,webgpu         Node backends: wasm, cpu, webgpu (Dawn) (default wasm, and webgpu when it loads)
  --positions first,middle,last  stage positions, of --stages
  --modes stash,recompute        backward modes (default both; stash is the Stage default)
  --reps n                       timed repetitions per measurement (default: tiny 5, small 3, base 1)
  --rounds n                     rounds alternating the order of the modes (default 2; base 1)
  --batch n                      sequences per microbatch (default 4)
  --stages n                     pipeline stages the preset is split into (default 4)`;

type Backend = 'wasm' | 'cpu' | 'webgpu';

/** Loads Dawn's navigator.gpu and tfjs's webgpu backend; returns the reason when it cannot. */
async function loadWebGpu(): Promise<{ ok: true; adapter: string; software: boolean } | { ok: false; reason: string }> {
  let mod: { create: (o: string[]) => unknown; globals: Record<string, unknown> };
  const from = process.env['WEBGPU_PACKAGE'];
  try {
    mod = from ? await import(`${from.replace(/\/$/, '')}/index.js`) : await import('webgpu' as string);
  } catch (e) {
    return { ok: false, reason: `the webgpu (Dawn) package is not installed (${(e as Error).message.split('\n')[0]}); npm i --no-save webgpu@0.6.2, or set WEBGPU_PACKAGE` };
  }
  Object.assign(globalThis, mod.globals);
  const gpu = mod.create([]) as { requestAdapter(): Promise<{ info?: { vendor?: string; architecture?: string; description?: string } } | null> };
  Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  const adapter = await gpu.requestAdapter();
  if (!adapter) {
    return { ok: false, reason: 'Dawn found no GPU adapter (for SwiftShader: LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json)' };
  }
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

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help')) {
    console.log(HELP);
    return;
  }
  const f = flags(argv, { presets: 'string', backends: 'string', positions: 'string', modes: 'string', reps: 'string', rounds: 'string', batch: 'string', stages: 'string', help: 'boolean' });
  const presets = list(f.presets, presetNames());
  const positions = list(f.positions, Object.keys(POSITIONS)) as Position[];
  const modes = list(f.modes, [...BACKWARD_MODES]) as BackwardMode[];
  const batch = Number(f.batch ?? 4);
  const stages = Number(f.stages ?? 4);
  for (const p of presets) getPreset(p);
  for (const p of positions) if (!(p in POSITIONS)) throw new Error(`unknown position "${p}"; choose from ${Object.keys(POSITIONS).join(', ')}`);
  for (const m of modes) if (!BACKWARD_MODES.includes(m)) throw new Error(`unknown mode "${m}"; choose from ${BACKWARD_MODES.join(', ')}`);
  const reps = f.reps === undefined ? undefined : Number(f.reps);
  const rounds = f.rounds === undefined ? undefined : Number(f.rounds);

  console.log(`compute benchmark  ${new Date().toISOString()}  ${machine()}`);
  console.log(`tfjs ${tf.version_core}; batch ${batch}, ${stages} stages; presets ${presets.join(',')}; positions ${positions.join(',')}; modes ${modes.join(',')}; reps ${reps ?? 'tiny 5, small 3, base 1'}`);
  console.log('matmul FLOPs counted from the config: a backward is 2x its forward, plus the embedding gradient on the first stage');
  for (const b of list(f.backends, ['wasm', 'webgpu']) as Backend[]) {
    let note = 'tfjs in Node';
    let software = false;
    if (b === 'webgpu') {
      const w = await loadWebGpu();
      if (!w.ok) {
        console.log(`\n== webgpu: skipped: ${w.reason} ==`);
        continue;
      }
      note = `Dawn, adapter ${w.adapter}`;
      software = w.software;
    } else if (b !== 'wasm' && b !== 'cpu') throw new Error(`unknown backend "${b}"; choose from wasm, cpu, webgpu`);
    await use(b);
    const extra = b === 'wasm' ? `, SIMD ${String(tf.env().getBool('WASM_HAS_SIMD_SUPPORT'))}` : '';
    console.log(`\n== ${b} (${note}${extra}) ==`);
    const run = software && typeof f.presets !== 'string' ? presets.filter((p) => p !== 'base') : presets;
    if (run.length < presets.length) console.log('base: skipped on a software adapter (minutes per repetition); name it in --presets to run it');
    const r = await runBackend({ presets: run, positions, modes, batch, stages, reps, rounds }, (line) => console.error(`  ${line}`));
    console.log(TABLE_NOTES.matmul);
    console.log(table(['preset', 'product', 'GFLOP/s'], r.matmul));
    console.log(`\n${TABLE_NOTES.stages}`);
    const t = stageTable(r.stages);
    console.log(table(t.headers, t.rows));
  }
  console.log(`\n${TABLE_NOTES.targets}`);
  console.log(`end: ${loadLine()}`);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
