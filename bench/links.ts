/**
 * Iteration time on home links: a real Coordinator relays real frames between paced volunteers
 * (bench/paced-volunteer.ts), each behind its own emulated link (testing/link-emulator.ts), for
 * every link x latency x wire encoding x activation size, side by side in one run.
 *
 *   npm run bench:links                  (links 1000,100,20 Mbit/s x 1,30,80 ms; small and base; ~20 min on the 2-core VM)
 *   npm run bench:links -- --quick       (links 100,20 x 30 ms, 2 iterations each)
 *   npm run bench:links -- --links 20 --latencies 30 --presets base --wires f32,int8 --iterations 3
 *   npm run bench:links -- --tab-gflops 200 --microbatches 8
 *   npm run bench:links -- --microbatches 16 --max-in-flight 1   (the scheduler's window held at 1F1B depth: before overlap)
 *
 * What is real and what is modelled (printed with the figures):
 *   real      the coordinator (scheduler, relay checks incl. int8 scale / f16 finiteness scans,
 *             metrics), socket.io, the frame codec, TCP through one link emulator per volunteer.
 *   paced     tab compute: forward = 2 * (matmul parameters of the stage) * tokens + causal attention
 *             FLOPs at --tab-gflops, backward = 2 x forward, plus the measured JS encode + decode
 *             time of one frame in the run's encoding for every frame a task sends or receives.
 *   synthetic activations: seeded roughly normal values with outliers, of the preset's exact
 *             shape [batch, seq, d_model]; encoded once per encoding, header patched per task.
 * Each volunteer has the same link: up = down = the link rate, the given one-way latency; the
 * coordinator sits on loopback (a datacenter). `compute-only` is the same run without links.
 * Everything runs in this process; `cpu` is its CPU time / wall time (one JS thread: near 100%
 * means the machine, not the link, sets the pace; such rows are marked `*`).
 * `window` is the scheduler's in-flight window in the last iteration (coordinator/in-flight-window.ts)
 * and what its measurements asked for; `pipeline eff.` is the paced compute of the busiest stage
 * per iteration over the iteration time (1 = that stage never waits).
 */
import { Coordinator, DEFAULT_COORDINATOR } from '../coordinator/server.js';
import { DEFAULT_SETTINGS, modelConfigOf, type RunSettings } from '../shared/run-settings.js';
import { stageParamSpecs, sizeOf } from '../shared/model/params.js';
import type { ResolvedConfig } from '../shared/model/config.js';
import { decodeTensorFrame, encodeTensorFrame, WIRE_DTYPES, WIRE_ENCODINGS, wireFrameBytes, type WireEncoding } from '../shared/protocol/index.js';
import { startLinkEmulator, type LinkEmulator } from '../testing/link-emulator.js';
import { PacedVolunteer, frameTemplate, syntheticActivations, type Pacing } from './paced-volunteer.js';
import { flags, fmt, fmtBytes, machine, median, table, loadLine } from './util.js';
import { until } from '../testing/until.js';

const HELP = `Usage: npm run bench:links -- [options]
  --links <Mbit/s,...>      link rates, up = down (default 1000,100,20)
  --latencies <ms,...>      one-way latencies (default 1,30,80)
  --presets <p,...>         activation sizes from these presets (default small,base)
  --wires <w,...>           encodings (default ${WIRE_ENCODINGS.join(',')})
  --iterations <n>          measured iterations per configuration, after one warm-up (default 3)
  --microbatches <n>        microbatches per iteration (default 4); --stages <n> (default 4); --batch <n> (default 4)
  --tab-gflops <x>          paced tab throughput (default 500 GFLOP/s, a mid-range GPU under WebGPU)
  --codec-ms <x>            pace every f16/int8 frame's JS encode+decode at x ms instead of measuring it
                            (the measurement follows the machine's load: fix it to compare runs)
  --max-in-flight <n>       the coordinator's --max-in-flight (default ${DEFAULT_COORDINATOR.maxInFlight}; 1 = 1F1B depth only, no overlap)
  --quick                   links 100,20 at 30 ms, 2 iterations
  -h, --help                this text
`;

/** Forward FLOPs of stage `s` per microbatch: 2 * matmul params * tokens + causal attention. */
function forwardFlops(c: ResolvedConfig, s: number, tokens: number): number {
  const matmul = stageParamSpecs(c, s)
    .filter((p) => p.shape.length === 2 && !p.name.startsWith('embed.'))
    .reduce((a, p) => a + sizeOf(p.shape), 0);
  // QK^T and AV: 2 * 2 * T * d per token per layer, halved by the causal mask.
  return 2 * matmul * tokens + 2 * c.seqLen * c.dModel * c.layersPerStage * tokens;
}

/** Median ms of JS encode + decode of one frame (what a tab adds per frame it sends or receives). */
function codecMs(shape: number[], wire: WireEncoding): number {
  if (wire === 'f32') return 0; // the f32 path copies, it does not convert; part of the baseline
  const data = syntheticActivations(shape.reduce((a, b) => a * b, 1));
  const header = { kind: 'act' as const, iteration: 0, microbatch: 0, hop: 0, fromStage: 0, toStage: -1, dtype: WIRE_DTYPES[wire], shape };
  const once = () => decodeTensorFrame(encodeTensorFrame(header, data));
  once(); // JIT warm-up and the float16 table
  once();
  const samples: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    once();
    samples.push(performance.now() - t0);
  }
  return median(samples);
}

interface RunResult {
  iterSeconds: number;
  cpu: number;
  /** The scheduler's window in the last iteration, and what its measurements asked for. */
  window: number;
  wanted: number | null;
}

async function runOnce(settings: RunSettings, pacing: Pacing, link: { mbps: number; latencyMs: number } | null, iterations: number, maxInFlight: number): Promise<RunResult> {
  const cfg = modelConfigOf(settings);
  const shape = [settings.batch, cfg.seqLen, cfg.dModel];
  // Volunteers reach the coordinator through their link emulators' ports (Host names those): serve loopback names on any port.
  const coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, maxInFlight, port: 0, silent: true, evalEvery: 0, maxIterations: iterations + 1, clientDir: '/nonexistent', dataDir: null, publicHosts: ['localhost', '127.0.0.1'] });
  const url = await coord.listen();
  const act = frameTemplate('act', shape, settings.wire!);
  const grad = frameTemplate('grad', shape, settings.wire!);
  const links: LinkEmulator[] = [];
  const vols: PacedVolunteer[] = [];
  try {
    for (let i = 0; i < settings.stages; i++) {
      const l = link ? await startLinkEmulator({ target: url, upMbps: link.mbps, downMbps: link.mbps, latencyMs: link.latencyMs, queueBytes: 8 * 1024 * 1024 }) : null;
      if (l) links.push(l);
      vols.push(new PacedVolunteer(l ? l.url : url, act, grad, pacing));
    }
    await until(() => coord.scheduler.iteration >= 1, 'the warm-up iteration', 600_000);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await until(() => coord.scheduler.iteration >= iterations + 1, `${iterations} iterations`, 1_200_000);
    const wall = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    const secs = coord.scheduler.history.slice(1).map((h) => h.seconds);
    const w = coord.scheduler.lastWindow;
    return { iterSeconds: median(secs), cpu: (c.user + c.system) / 1e6 / wall, window: w?.size ?? NaN, wanted: w?.wanted ?? null };
  } finally {
    for (const v of vols) v.close();
    await coord.close();
    for (const l of links) await l.close();
  }
}

async function main(): Promise<void> {
  const f = flags(process.argv.slice(2), {
    links: 'string',
    latencies: 'string',
    presets: 'string',
    wires: 'string',
    iterations: 'string',
    microbatches: 'string',
    stages: 'string',
    batch: 'string',
    'tab-gflops': 'string',
    'max-in-flight': 'string',
    'codec-ms': 'string',
    quick: 'boolean',
    help: 'boolean',
  });
  if (f.help) return void process.stdout.write(HELP);
  const list = (v: unknown, d: string) => String(v ?? d).split(',').filter(Boolean);
  const quick = f.quick === true;
  const rates = list(f.links, quick ? '100,20' : '1000,100,20').map(Number);
  const latencies = list(f.latencies, quick ? '30' : '1,30,80').map(Number);
  const presets = list(f.presets, 'small,base');
  const wires = list(f.wires, WIRE_ENCODINGS.join(',')) as WireEncoding[];
  for (const w of wires) if (!WIRE_ENCODINGS.includes(w)) throw new Error(`unknown wire "${w}"`);
  const iterations = Number(f.iterations ?? (quick ? 2 : 3));
  const gflops = Number(f['tab-gflops'] ?? 500);
  const maxInFlight = Number(f['max-in-flight'] ?? DEFAULT_COORDINATOR.maxInFlight);
  const base: RunSettings = {
    ...DEFAULT_SETTINGS,
    stages: Number(f.stages ?? 4),
    microbatches: Number(f.microbatches ?? 4),
    batch: Number(f.batch ?? 4),
    recovery: 'checkfree',
  };

  console.log(`link benchmark  ${new Date().toISOString()}  ${machine()}`);
  console.log(
    `real: Coordinator + socket.io + frame codec + one TCP link emulator per volunteer (up = down = link rate, one-way latency each way).\n` +
      `paced: tab compute at ${gflops} GFLOP/s (forward = 2*matmul params*tokens + causal attention, backward = 2x), plus measured JS encode+decode per frame.\n` +
      `synthetic: activations/gradients of the preset's exact shape (seeded, with outliers). ${base.stages} stages, ${base.microbatches} microbatches x batch ${base.batch}; ` +
      `median of ${iterations} iterations after 1 warm-up; --max-in-flight ${maxInFlight}.`,
  );
  const summary: string[] = [];
  for (const preset of presets) {
    const cfg = modelConfigOf({ ...base, preset });
    const shape = [base.batch, cfg.seqLen, cfg.dModel];
    const tokens = base.batch * cfg.seqLen;
    const fwdMs = Math.max(...Array.from({ length: base.stages }, (_, s) => forwardFlops(cfg, s, tokens))) / (gflops * 1e9) * 1000;
    const fixedCodec = f['codec-ms'] === undefined ? null : Number(f['codec-ms']);
    const codec = Object.fromEntries(wires.map((w) => [w, w === 'f32' ? 0 : (fixedCodec ?? codecMs(shape, w))])) as Record<WireEncoding, number>;
    // The busiest stage's paced compute per iteration: a middle stage decodes and encodes one frame per task.
    const busyMs = (w: WireEncoding) => base.microbatches * (3 * fwdMs + 4 * codec[w]);
    const eff = (w: WireEncoding, r: RunResult) => fmt(busyMs(w) / (r.iterSeconds * 1000), 2);
    const win = (r: RunResult) => `${fmt(r.window, 0)} (${r.wanted === null ? '-' : Number.isFinite(r.wanted) ? fmt(r.wanted, 0) : 'inf'})`;
    console.log(
      `\n${preset}: activation [${shape.join(', ')}] = ${fmtBytes(wireFrameBytes(shape, 'f32'))} f32; paced forward ${fmt(fwdMs, 1)} ms, backward ${fmt(2 * fwdMs, 1)} ms per microbatch; ` +
        `JS encode+decode per frame${fixedCodec === null ? '' : ' (fixed by --codec-ms)'}: ${wires.map((w) => `${w} ${fmt(codec[w], 1)} ms`).join(', ')}`,
    );
    const compute: Record<string, RunResult> = {};
    for (const w of wires) compute[w] = await runOnce({ ...base, preset, wire: w }, { forwardMs: fwdMs, codecMs: codec[w] }, null, iterations, maxInFlight);
    const rows: string[][] = [];
    const tokensPerIter = base.microbatches * tokens;
    const ref = compute[wires[0]!]!.iterSeconds;
    for (const w of wires) {
      const r = compute[w]!;
      rows.push(['loopback', '-', w, fmtBytes(wireFrameBytes(shape, w)), fmt(wireFrameBytes(shape, w) / wireFrameBytes(shape, 'f32'), 3), fmt(r.iterSeconds, 3), fmt(tokensPerIter / r.iterSeconds, 0), fmt(r.iterSeconds / ref, 2), '-', win(r), eff(w, r), `${fmt(r.cpu * 100, 0)}%${r.cpu > 0.85 ? ' *' : ''}`]);
    }
    for (const mbps of rates) {
      for (const lat of latencies) {
        const res: Partial<Record<WireEncoding, RunResult>> = {};
        for (const w of wires) res[w] = await runOnce({ ...base, preset, wire: w }, { forwardMs: fwdMs, codecMs: codec[w] }, { mbps, latencyMs: lat }, iterations, maxInFlight);
        for (const w of wires) {
          const r = res[w]!;
          const f32 = res.f32?.iterSeconds ?? NaN;
          rows.push([
            `${mbps} Mbit/s`,
            `${lat} ms`,
            w,
            fmtBytes(wireFrameBytes(shape, w)),
            fmt(wireFrameBytes(shape, w) / wireFrameBytes(shape, 'f32'), 3),
            fmt(r.iterSeconds, 3),
            fmt(tokensPerIter / r.iterSeconds, 0),
            fmt(r.iterSeconds / compute[w]!.iterSeconds, 2),
            fmt(f32 / r.iterSeconds, 2),
            win(r),
            eff(w, r),
            `${fmt(r.cpu * 100, 0)}%${r.cpu > 0.85 ? ' *' : ''}`,
          ]);
          if (preset === 'base' && mbps === 20 && w === 'int8' && res.f32) summary.push(`base, 20 Mbit/s, ${lat} ms: int8 iteration ${fmt(f32 / r.iterSeconds, 2)}x shorter than f32 (target >= 2.5x)`);
        }
      }
    }
    console.log(table(['link', 'latency', 'wire', 'bytes/hop', 'x f32 bytes', 'iter s', 'tokens/s', 'x compute-only', 'f32 iter / this', 'window (wanted)', 'pipeline eff.', 'cpu'], rows));
  }
  console.log(`\nbytes/hop: one activation (= one gradient) frame, header included; a hop sends it up the sender's link and down the receiver's.`);
  console.log(`x compute-only: iteration time / the same encoding's loopback run (no links, same pacing).`);
  console.log(`window (wanted): microbatches in flight in the last iteration (what the measured round trips asked for before the bounds: 1F1B depth, M, --max-in-flight).`);
  console.log(`pipeline eff.: paced compute of a middle stage per iteration (M x (forward + backward + 4 frame codecs)) / iteration time.`);
  for (const s of summary) console.log(s);
  console.log(`end: ${loadLine()}`);
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
