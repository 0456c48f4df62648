/**
 * Soak: one coordinator running a small swarm (4 Node volunteers on wasm) while N simulated
 * volunteers join, idle as spares, leave and rejoin at random. Prints coordinator memory and
 * event-loop lag over time; exits non-zero if memory keeps growing or training stalls.
 *
 *   npm run soak -- --volunteers 200 --seconds 300
 */
import { parseArgs } from 'node:util';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { io, type Socket } from 'socket.io-client';
import { Coordinator, DEFAULT_COORDINATOR } from '../coordinator/server.js';
import { startNodeVolunteer, type NodeVolunteer } from '../testing/node-volunteer.js';
import { DEFAULT_SETTINGS } from '../shared/run-settings.js';
import { mulberry32 } from '../shared/model/rng.js';

export interface SoakOptions {
  volunteers: number;
  seconds: number;
  /** Sampling interval for the printed figures. */
  sampleSeconds: number;
  seed: number;
  log?: (line: string) => void;
}

export interface SoakSample {
  t: number;
  heapMB: number;
  rssMB: number;
  lagP99Ms: number;
  connected: number;
  iteration: number;
}

export interface SoakResult {
  samples: SoakSample[];
  joins: number;
  leaves: number;
  /** Heap growth (MB) between the first and the last third of the run (medians). */
  heapGrowthMB: number;
  stalled: boolean;
  failures: string[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const log = o.log ?? console.log;
  const coord = new Coordinator({
    ...DEFAULT_COORDINATOR,
    connectionRate: 1e6, // every simulated volunteer connects from this machine's one address
    maxReplicas: 1, // one tab per stage: extra tabs are spares (these tests exercise the strategy rung)
    settings: { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 1, seqLen: 32, recovery: 'checkfree' },
    port: 0,
    silent: true,
    evalEvery: 0,
    graceMs: 500,
    rateLimit: 400,
  });
  const url = await coord.listen();
  const workers: NodeVolunteer[] = [];
  for (let i = 0; i < 4; i++) workers.push(await startNodeVolunteer(url, { name: `worker${i}` }));
  const rand = mulberry32(o.seed);
  const idle: (Socket | null)[] = Array.from({ length: o.volunteers }, () => null);
  let joins = 0;
  let leaves = 0;
  const join = (i: number) => {
    const s = io(url, { transports: ['websocket'], forceNew: true, reconnection: false });
    s.on('connect', () => s.emit('hello', { backend: 'cpu', adapter: null, throughputGflops: 0, agent: `soak-${i}` }, () => {}));
    // An idle spare politely refuses a stage (it has no model code); the coordinator re-queues the stage.
    s.on('assign', (_a: unknown, ack: (r: { ok: boolean; error?: string }) => void) => ack({ ok: false, error: 'soak client' }));
    idle[i] = s;
    joins++;
  };
  const leave = (i: number) => {
    const s = idle[i];
    if (!s) return;
    if (rand() < 0.5) s.emit('leave');
    s.close();
    idle[i] = null;
    leaves++;
  };
  for (let i = 0; i < o.volunteers; i++) join(i);
  const churn = setInterval(() => {
    // Each tick, ~5% of the simulated volunteers change state.
    for (let k = 0; k < Math.max(1, Math.round(o.volunteers * 0.05)); k++) {
      const i = Math.floor(rand() * o.volunteers);
      if (idle[i]) leave(i);
      else join(i);
    }
  }, 200);
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const samples: SoakSample[] = [];
  const t0 = Date.now();
  log('  t(s)  heap(MB)  rss(MB)  loop-lag p99(ms)  connected  iteration');
  while ((Date.now() - t0) / 1000 < o.seconds) {
    await new Promise((r) => setTimeout(r, o.sampleSeconds * 1000));
    globalThis.gc?.();
    const m = process.memoryUsage();
    const sample: SoakSample = {
      t: (Date.now() - t0) / 1000,
      heapMB: m.heapUsed / 2 ** 20,
      rssMB: m.rss / 2 ** 20,
      lagP99Ms: lag.percentile(99) / 1e6,
      connected: coord.registry.all().length,
      iteration: coord.scheduler.iteration,
    };
    lag.reset();
    samples.push(sample);
    log(
      `${sample.t.toFixed(0).padStart(6)}  ${sample.heapMB.toFixed(1).padStart(8)}  ${sample.rssMB.toFixed(1).padStart(7)}  ${sample.lagP99Ms
        .toFixed(1)
        .padStart(16)}  ${String(sample.connected).padStart(9)}  ${String(sample.iteration).padStart(9)}`,
    );
  }
  clearInterval(churn);
  lag.disable();
  for (let i = 0; i < o.volunteers; i++) idle[i]?.close();
  for (const w of workers) w.kill();
  await coord.close();

  const third = Math.max(1, Math.floor(samples.length / 3));
  const heapGrowthMB = median(samples.slice(-third).map((s) => s.heapMB)) - median(samples.slice(0, third).map((s) => s.heapMB));
  const failures: string[] = [];
  // Unbounded growth: the last third sits well above the first third (after warm-up) and keeps rising.
  const rising = samples.slice(-third).every((s, i, a) => i === 0 || s.heapMB >= a[i - 1]!.heapMB);
  if (heapGrowthMB > 64 || (heapGrowthMB > 16 && rising)) failures.push(`coordinator heap grew ${heapGrowthMB.toFixed(1)} MB`);
  // Stall: no completed iteration in the last third of the run.
  const stalled = samples.length > 2 && samples[samples.length - 1]!.iteration === samples[samples.length - 1 - third]!.iteration;
  if (stalled) failures.push('training stalled');
  return { samples, joins, leaves, heapGrowthMB, stalled, failures };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { volunteers: { type: 'string' }, seconds: { type: 'string' }, sample: { type: 'string' }, seed: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    console.log('Usage: npm run soak -- [--volunteers 200] [--seconds 300] [--sample 5] [--seed 1]\nFails (exit 1) if coordinator memory keeps growing or training stalls.');
    return;
  }
  const r = await runSoak({
    volunteers: Number(values.volunteers ?? 200),
    seconds: Number(values.seconds ?? 300),
    sampleSeconds: Number(values.sample ?? 5),
    seed: Number(values.seed ?? 1),
  });
  console.log(`joins ${r.joins}, leaves ${r.leaves}, heap growth first->last third ${r.heapGrowthMB.toFixed(1)} MB`);
  if (r.failures.length) {
    console.error(`SOAK FAILED: ${r.failures.join('; ')}`);
    process.exit(1);
  }
  console.log('soak passed');
  process.exit(0);
}

if (process.argv[1]?.endsWith('soak.ts')) void main();
