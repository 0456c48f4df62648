/**
 * The compute benchmark in Chromium: the same measurements as `npm run bench:compute`
 * (bench/compute-run.ts) run inside a Web Worker of headless Debian Chromium, with each backend
 * selected the way the volunteer worker selects it (client/src/backend.ts). WebGPU runs on
 * SwiftShader here (coordinator/chromium.ts pins that adapter); on a machine with a GPU, run it
 * with CHROMIUM_ARGS_EXTRA=--use-webgpu-adapter=default to measure the GPU instead.
 *
 *   npm run bench:compute-browser
 *   npm run bench:compute-browser -- --backends webgpu,wasm --presets tiny,small --reps 2
 *
 * The page and worker (bench/browser/) are built with Vite into a temporary folder and served on
 * 127.0.0.1; browser, server and folder are removed at the end, also on failure.
 */
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from '@playwright/test';
import sirv from 'sirv';
import { build } from 'vite';
import { chromiumLaunchOptions } from '../coordinator/cli/chromium.js';
import { presetNames } from '../shared/model/config.js';
import { BACKWARD_MODES } from '../shared/model/stage.js';
import { POSITIONS, stageTable, TABLE_NOTES, type Position } from './compute-run.js';
import type { BenchOptions, BenchToPage } from './browser/worker.js';
import { flags, list, machine, table, loadLine } from './util.js';
import type { BackendName } from '../shared/protocol/events.js';

const HELP = `npm run bench:compute-browser -- [options]
  --backends webgpu,wasm,webgl   backends, selected as the volunteer worker does (default webgpu,wasm)
  --presets tiny,small           presets (default tiny,small: base takes minutes per repetition on SwiftShader)
  --positions, --modes, --reps, --rounds, --batch, --stages   as for npm run bench:compute
  --timeout s                    give up after s seconds (default 1200)
Set CHROMIUM_ARGS_EXTRA (space-separated) to add browser flags, e.g. --use-webgpu-adapter=default on a GPU machine.`;

const root = fileURLToPath(new URL('./browser/', import.meta.url));

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help')) {
    console.log(HELP);
    return;
  }
  const f = flags(argv, { backends: 'string', presets: 'string', positions: 'string', modes: 'string', reps: 'string', rounds: 'string', batch: 'string', stages: 'string', timeout: 'string', help: 'boolean' });
  const options: BenchOptions = {
    backends: list(f.backends, ['webgpu', 'wasm']) as BackendName[],
    presets: list(f.presets, ['tiny', 'small']),
    positions: list(f.positions, Object.keys(POSITIONS)) as Position[],
    modes: list(f.modes, [...BACKWARD_MODES]) as BenchOptions['modes'],
    batch: Number(f.batch ?? 4),
    stages: Number(f.stages ?? 4),
    reps: f.reps === undefined ? undefined : Number(f.reps),
    rounds: f.rounds === undefined ? undefined : Number(f.rounds),
  };
  for (const p of options.presets) if (!presetNames().includes(p as never)) throw new Error(`unknown preset "${p}"`);
  const timeoutMs = Number(f.timeout ?? 1200) * 1000;

  console.log(`compute benchmark (Chromium)  ${new Date().toISOString()}  ${machine()}`);
  console.log(`backends ${options.backends.join(',')}; presets ${options.presets.join(',')}; positions ${options.positions.join(',')}; modes ${options.modes.join(',')}; batch ${options.batch}, ${options.stages} stages`);
  const outDir = mkdtempSync(path.join(tmpdir(), 'compute-bench-'));
  let server: http.Server | null = null;
  let browser: Browser | null = null;
  try {
    await build({
      configFile: false,
      root,
      base: './',
      logLevel: 'warn',
      publicDir: false,
      worker: { format: 'es' },
      build: { outDir, emptyOutDir: true, target: 'es2022', assetsInlineLimit: (file: string) => (file.endsWith('.wasm') ? false : undefined), chunkSizeWarningLimit: 8192 },
    });
    const statics = sirv(outDir, { dev: true });
    server = http.createServer((req, res) => statics(req, res, () => {
      res.writeHead(404).end();
    }));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const extra = (process.env['CHROMIUM_ARGS_EXTRA'] ?? '').split(' ').filter(Boolean);
    browser = await chromium.launch(chromiumLaunchOptions(extra));
    const page = await browser.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') console.log(`[page] ${m.text()}`);
    });
    await page.goto(`http://127.0.0.1:${port}/index.html?options=${encodeURIComponent(JSON.stringify(options))}`);
    console.log(`browser: ${browser.version()}`);
    type State = { log: string[]; results: Extract<BenchToPage, { type: 'result' }>[]; skipped: { backend: string; reason: string }[]; done: boolean; error: string | null };
    const read = () => page.evaluate(() => (window as unknown as { computeBench: unknown }).computeBench) as Promise<State>;
    const t0 = Date.now();
    let printed = 0;
    let state = await read();
    while (!state.done && !state.error) {
      if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs / 1000} s; last: ${state.log.at(-1) ?? 'nothing'}`);
      await new Promise((r) => setTimeout(r, 1000));
      state = await read();
      for (; printed < state.log.length; printed++) console.log(`  ${state.log[printed]}`);
    }
    if (state.error) throw new Error(`in the browser: ${state.error}`);
    for (const s of state.skipped) console.log(`\n== ${s.backend}: skipped: ${s.reason} ==`);
    for (const r of state.results) {
      console.log(`\n== ${r.backend} (Chromium Web Worker${r.adapter ? `, adapter ${r.adapter}` : ''}) ==`);
      console.log(TABLE_NOTES.matmul);
      console.log(table(['preset', 'product', 'GFLOP/s'], r.result.matmul));
      console.log(`\n${TABLE_NOTES.stages}`);
      const t = stageTable(r.result.stages);
      console.log(table(t.headers, t.rows));
    }
    console.log(`\n${TABLE_NOTES.targets}`);
    console.log(`end: ${loadLine()}`);
  } finally {
    await browser?.close().catch(() => {});
    server?.close();
    rmSync(outDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
