/**
 * Scaling benchmark: does the swarm's throughput grow with its volunteers? S = 4 stages with
 * N = 4, 8, 16, 32 Node volunteers (groups of N/4 replicas per stage).
 *
 *   npm run bench:scaling
 *   npm run bench:scaling -- --tabs 4,8,16 --pace 400 --iterations 4
 *   npm run bench:scaling -- --dp diloco --dp-every 4 --link 50,50,20 --preset tiny
 *   npm run bench:scaling -- --volunteer paced --preset base --dp diloco --link 50,50,20 --pace 100
 *   (32 base volunteers on 50,50,20 links place in ~7 minutes: states go in 1 MiB pieces, pings between them)
 *
 * `--dp exact|diloco` (docs/data-parallel.md; `--dp-every H`, `--dp-fragments F --dp-overlap tau`), `--preset`, and `--link up,down,latency`
 * (Mbit/s, Mbit/s, ms: every volunteer reaches the coordinator through its own emulated link,
 * testing/link-emulator.ts). Bytes through the coordinator are read from its counters: relayed
 * frames, gradient reduction (exact) and sync chunks (diloco).
 *
 * This machine has 2 cores: to measure scheduling and scaling rather than the CPU, every task of
 * every volunteer is PACED to last at least `--pace` ms of wall time (a benchmark-only option of
 * the Node volunteer, testing/node-volunteer.ts), with a tiny model whose real compute is a few
 * ms, so a volunteer behaves like a device of fixed speed. The global batch grows with the swarm
 * (weak scaling: `--mb-per-tab` microbatches per volunteer per iteration), as data parallelism
 * does. The coordinator runs in this process and the volunteers in child processes, so
 * this process's CPU time is the coordinator's.
 *
 * `--volunteer paced` uses the benchmark-only volunteer (bench/paced-volunteer.ts) instead: it
 * computes nothing, waits `--pace` ms per forward task (2x per backward) and answers everything the
 * coordinator asks with frames and bundles of the true sizes and encodings (activations, gradients,
 * stage states for joins, diloco sync chunks and outer states), so 32 `base` volunteers fit on 2
 * cores while the coordinator and the links carry a real run's bytes.
 *
 * Prints per N: tokens/s, its ratio to N = 4 and to linear scaling (N/4), iteration time, the
 * coordinator's CPU share, relay and gradient-reduction MB/s; and where scaling falls off.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Coordinator, DEFAULT_COORDINATOR } from '../coordinator/server.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../shared/run-settings.js';
import { startNodeVolunteer, type NodeVolunteer } from '../testing/node-volunteer.js';
import { until } from '../testing/until.js';
import { startLinkEmulator, type LinkEmulator, type LinkSpec } from '../testing/link-emulator.js';
import { DEFAULT_DP, DP_MODES, type DpMode } from '../shared/dp/dp-settings.js';
import { streamingOf, syncsAppliedBy } from '../shared/dp/streaming.js';
import { flags, fmt, machine, table } from './util.js';
import { modelConfigOf } from '../shared/run-settings.js';
import { stageParamSpecs } from '../shared/model/params.js';
import { flatLength } from '../shared/dp/flat-weights.js';
import { PacedVolunteer, frameTemplate } from './paced-volunteer.js';
import { formatLinkUse, linkUse, type TabLinkCount, type LinkUse } from './link-use.js';

const STAGES = 4;
/** Volunteers per child process. */
const PER_CHILD = 8;

type VolunteerKind = 'node' | 'paced';

/** The paced volunteers' model: the run's preset at batch 1, seq 32, and its diloco settings. */
function pacedParts(preset: string, dp: DpMode, every: number): { act: Uint8Array; grad: Uint8Array; params: (s: number) => number; dp: boolean } {
  const settings = benchSettings(preset, 1, dp, every);
  const config = modelConfigOf(settings);
  const shape = [settings.batch, config.seqLen, config.dModel];
  return { act: frameTemplate('act', shape, settings.wire!), grad: frameTemplate('grad', shape, settings.wire!), params: (s) => flatLength(stageParamSpecs(config, s)), dp: dp === 'diloco' };
}

/** Link rate while volunteers join when `--warm-fast` (Mbit/s: loopback-like, so joins copy states quickly). */
const WARM_MBPS = 10_000;

async function child(url: string, count: number, paceMs: number, name: string, link: LinkSpec | null, kind: VolunteerKind, preset: string, dp: DpMode, every: number, codecMs: number, warmFast: boolean): Promise<void> {
  const vols: (NodeVolunteer | PacedVolunteer)[] = [];
  const links: LinkEmulator[] = [];
  const paced = kind === 'paced' ? pacedParts(preset, dp, every) : null;
  for (let i = 0; i < count; i++) {
    // Each volunteer behind its own emulated home link (its own bandwidth and delay).
    const l = link ? await startLinkEmulator({ ...link, ...(warmFast ? { upMbps: WARM_MBPS, downMbps: WARM_MBPS } : {}), target: url }) : null;
    if (l) links.push(l);
    const to = l?.url ?? url;
    vols.push(
      paced
        ? new PacedVolunteer(to, paced.act, paced.grad, { forwardMs: paceMs, codecMs }, paced.dp ? { params: paced.params, wire: DEFAULT_SETTINGS.wire! } : undefined)
        : await startNodeVolunteer(to, { name: `${name}-${i}`, paceMs }),
    );
  }
  process.send?.({ kind: 'ready' });
  process.on('message', (m: { kind: string }) => {
    if (m?.kind === 'shape' && link) {
      for (const l of links) l.setRates(link.upMbps, link.downMbps);
      process.send?.({ kind: 'shaped' });
      return;
    }
    if (m?.kind === 'links') {
      // Each tab's link counters (bytes delivered each way) and the stage it serves.
      const counts: TabLinkCount[] = links.map((l, i) => ({ name: `${name}-${i}`, stage: vols[i] instanceof PacedVolunteer ? vols[i].stageIndex : -1, up: l.delivered.up, down: l.delivered.down }));
      process.send?.({ kind: 'links', counts });
      return;
    }
    for (const v of vols) (v instanceof PacedVolunteer ? v.close() : v.kill());
    for (const l of links) void l.close();
    process.exit(0);
  });
}

function benchSettings(preset: string, microbatches: number, dp: DpMode, every: number, streaming: { fragments: number; overlap: number } = { fragments: 1, overlap: 0 }): RunSettings {
  return {
    ...DEFAULT_SETTINGS,
    preset,
    stages: STAGES,
    microbatches,
    batch: 1,
    seqLen: 32,
    recovery: 'checkfree',
    dp: { ...DEFAULT_DP, mode: dp, every, ...streaming },
  };
}

/** Asks every child `kind` and collects the answers `reply`. */
function askKids<T>(kids: ChildProcess[], kind: string, reply: string): Promise<T[]> {
  return Promise.all(
    kids.map(
      (k) =>
        new Promise<T>((resolve) => {
          const on = (m: { kind: string } & T) => {
            if (m?.kind !== reply) return;
            k.off('message', on);
            resolve(m);
          };
          k.on('message', on);
          k.send({ kind });
        }),
    ),
  );
}

/** Every child's link counters, once. */
async function linkCounts(kids: ChildProcess[]): Promise<TabLinkCount[]> {
  return (await askKids<{ counts: TabLinkCount[] }>(kids, 'links', 'links')).flatMap((m) => m.counts);
}

/** `--link up,down,latency` (Mbit/s, Mbit/s, ms). */
function parseLink(s: string | undefined): LinkSpec | null {
  if (!s) return null;
  const [upMbps, downMbps, latencyMs] = s.split(',').map(Number);
  if (![upMbps, downMbps, latencyMs].every((x) => Number.isFinite(x) && x! >= 0) || !(upMbps! > 0 && downMbps! > 0)) throw new Error(`--link wants up,down,latency (Mbit/s, Mbit/s, ms), got "${s}"`);
  return { upMbps: upMbps!, downMbps: downMbps!, latencyMs: latencyMs! };
}

interface Setup {
  preset: string;
  dp: DpMode;
  every: number;
  /** diloco: Streaming DiLoCo's --dp-fragments and --dp-overlap (shared/dp/streaming.ts). */
  streaming: { fragments: number; overlap: number };
  link: LinkSpec | null;
  volunteer: VolunteerKind;
  codecMs: number;
  /** Links run at loopback-like rates until every volunteer is placed (joins copy 100 MB states), shaped from then on. */
  warmFast: boolean;
  /** The coordinator's --heartbeat-timeout (ms): a tab whose pong is queued behind a 100 MB state on a slow link must not be dropped. */
  heartbeatTimeoutMs: number;
}

interface Row {
  tabs: number;
  microbatches: number;
  tokensPerSec: number;
  iterSeconds: number;
  cpuShare: number;
  relayMBs: number;
  reductionMBs: number;
  /** Bytes through the coordinator (relay + reduction + diloco sync) per iteration, and per replica-iteration. */
  bytesPerIteration: number;
  bytesPerReplicaIteration: number;
  /** Each tab's link use over the measured window (null on loopback). */
  links: LinkUse[] | null;
  /** Median and largest time between consecutive iterations' completions in the window (a sync's spike shows in the max). */
  gapP50: number;
  gapMax: number;
  /** Seconds from the first placement to every volunteer placed, and the joins' fan-outs (coordinator events). */
  placeSeconds: number;
  joins: JoinStats;
}

interface JoinStats {
  /** Fan-outs (one pull each) and the tabs they placed. */
  fanouts: number;
  joiners: number;
  /** Largest pull and largest push (one joiner's assignment + outer state), seconds. */
  pullMax: number;
  pushMax: number;
}

/** The join fan-outs the coordinator logged (placement.ts: one 'assign' event with `fanout` per pull). */
function joinStats(c: Coordinator): JoinStats {
  const fans = c.events.list('assign').map((e) => e.data as { fanout?: number; pullMs?: number; pushMs?: number } | undefined).filter((d) => typeof d?.fanout === 'number');
  return {
    fanouts: fans.length,
    joiners: fans.reduce((a, d) => a + d!.fanout!, 0),
    pullMax: Math.max(0, ...fans.map((d) => (d!.pullMs ?? 0) / 1000)),
    pushMax: Math.max(0, ...fans.map((d) => (d!.pushMs ?? 0) / 1000)),
  };
}

function iterationGaps(times: readonly number[]): { p50: number; max: number } {
  const gaps = times.slice(1).map((t, i) => (t - times[i]!) / 1000).sort((a, b) => a - b);
  return { p50: gaps[Math.floor(gaps.length / 2)] ?? NaN, max: gaps.at(-1) ?? NaN };
}

async function counter(c: Coordinator, name: string): Promise<number> {
  const m = (await c.metrics.registry.getMetricsAsJSON()).find((x) => x.name === name);
  return (m?.values ?? []).reduce((a, v) => a + Number(v.value), 0);
}

async function measure(tabs: number, paceMs: number, mbPerTab: number, iterations: number, warmup: number, setup: Setup): Promise<Row> {
  const settings = benchSettings(setup.preset, mbPerTab * tabs, setup.dp, setup.every, setup.streaming);
  const coord = new Coordinator({
    ...DEFAULT_COORDINATOR,
    connectionRate: 1e6, // every simulated volunteer connects from this machine's one address
    settings,
    port: 0,
    silent: true,
    evalEvery: 0,
    rebalanceEvery: 0,
    replicaSyncEvery: 0,
    heartbeatTimeoutMs: setup.heartbeatTimeoutMs,
    // Through a link emulator the Host header names the emulator's port: accept 127.0.0.1 on any port.
    publicHosts: setup.link ? ['127.0.0.1'] : [],
    rateLimit: 100_000,
    clientDir: '/nonexistent',
    dataDir: null,
  });
  const url = await coord.listen();
  const kids: ChildProcess[] = [];
  try {
    coord.scheduler.setPaused(true);
    for (let i = 0; i * PER_CHILD < tabs; i++) {
      const n = Math.min(PER_CHILD, tabs - i * PER_CHILD);
      const linkArgs = setup.link ? ['--link', `${setup.link.upMbps},${setup.link.downMbps},${setup.link.latencyMs}`] : [];
      const childArgs = ['--volunteer', setup.volunteer, '--preset', setup.preset, '--dp', setup.dp, '--dp-every', String(setup.every), '--codec-ms', String(setup.codecMs), ...(setup.warmFast ? ['--warm-fast'] : [])];
      const k = fork(fileURLToPath(import.meta.url), ['--child', url, '--count', String(n), '--pace', String(paceMs), '--name', `c${i}`, ...linkArgs, ...childArgs], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      kids.push(k);
      // A volunteer process that dies mid-run would leave the coordinator waiting for minutes: stop.
      k.on('exit', (c) => {
        if (c !== 0) {
          console.error(`volunteer process c${i} exited (${c}): stopping`);
          process.exit(1);
        }
      });
      await new Promise<void>((resolve, reject) => {
        k.once('message', () => resolve());
        k.once('exit', (c) => reject(new Error(`volunteer process exited (${c})`)));
      });
    }
    coord.scheduler.setPaused(false);
    coord.scheduler.kick();
    const place0 = Date.now();
    await until(() => coord.stages.activeCount() === tabs, `${tabs} tabs placed`, 900_000).catch((e: Error) => {
      // Say where placement stood (groups, waiting tabs, the iteration, the joins' fan-outs) before giving up.
      const sizes = Array.from({ length: STAGES }, (_, s) => coord.stages.size(s)).join('/');
      console.error(`placement stalled: replicas per stage ${sizes}, ${coord.placement.waitingCount()} waiting, iteration ${coord.scheduler.iteration}`);
      for (const ev of coord.events.list('assign').slice(-12)) console.error(`  assign event: ${ev.message}`);
      throw e;
    });
    const placeSeconds = (Date.now() - place0) / 1000;
    const joins = joinStats(coord);
    if (setup.warmFast && setup.link) {
      await askKids(kids, 'shape', 'shaped');
      // Warm-up counts from here: at least `warmup` iterations on the shaped links.
      warmup += coord.scheduler.iteration;
    }
    // diloco: measure whole sync intervals, from right after a sync to right after one (the
    // iteration counter moves before its sync ends, so the sync count is waited for too).
    const H = setup.dp === 'diloco' ? setup.every : 1;
    const syncsDone = () => !coord.scheduler.diloco || coord.scheduler.diloco.count >= syncsAppliedBy(streamingOf(settings.dp!), coord.scheduler.iteration);
    const measured = Math.ceil(iterations / H) * H;
    await until(() => coord.scheduler.iteration >= warmup && coord.scheduler.iteration % H === 0 && syncsDone(), 'warm-up', 600_000);
    const it0 = coord.scheduler.iteration;
    const t0 = Date.now();
    const cpu0 = process.cpuUsage();
    const relay0 = await counter(coord, 'swarm_relay_bytes_total');
    const red0 = await counter(coord, 'swarm_reduction_bytes_total');
    const sync0 = await counter(coord, 'swarm_dp_sync_bytes_total');
    const links0 = setup.link ? await linkCounts(kids) : null;
    await until(() => coord.scheduler.iteration >= it0 + measured && syncsDone(), `${measured} iterations`, 1_200_000);
    const seconds = (Date.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const done = coord.scheduler.iteration - it0;
    const tokens = done * settings.microbatches * settings.batch * (settings.seqLen ?? 32);
    const relay = (await counter(coord, 'swarm_relay_bytes_total')) - relay0;
    const reduction = (await counter(coord, 'swarm_reduction_bytes_total')) - red0;
    const sync = (await counter(coord, 'swarm_dp_sync_bytes_total')) - sync0;
    const links = links0 && setup.link ? linkUse(links0, await linkCounts(kids), seconds, setup.link) : null;
    const gaps = iterationGaps(coord.scheduler.history.filter((h) => h.iteration >= it0 - 1 && h.iteration < it0 + done).map((h) => h.time));
    return {
      tabs,
      microbatches: settings.microbatches,
      tokensPerSec: tokens / seconds,
      iterSeconds: seconds / done,
      cpuShare: (cpu.user + cpu.system) / 1e6 / seconds,
      relayMBs: relay / seconds / 1e6,
      reductionMBs: (reduction + sync) / seconds / 1e6,
      bytesPerIteration: (relay + reduction + sync) / done,
      bytesPerReplicaIteration: (reduction + sync) / done / tabs,
      links,
      gapP50: gaps.p50,
      gapMax: gaps.max,
      placeSeconds,
      joins,
    };
  } finally {
    for (const k of kids) k.send('stop');
    await Promise.all(kids.map((k) => new Promise((r) => (k.exitCode !== null ? r(null) : k.once('exit', r)))));
    await coord.close();
  }
}

const HELP = `bench:scaling: does the swarm's throughput grow with its volunteers? S = 4 stages, N Node
volunteers (N/4 replicas per stage), weak scaling; prints tokens/s, fraction of linear, iteration
time, bytes through the coordinator per iteration and per replica-iteration, each tab's link use.
Figures and what they mean: docs/benchmarks.md, docs/data-parallel.md.

  npm run bench:scaling -- [options]

  --tabs N,N,...            volunteer counts, each a multiple of 4 (default 4,8,16,32; the first is the baseline)
  --pace MS                 every task lasts at least MS ms of wall time (default 300): volunteers of fixed speed
  --volunteer node|paced    node: real Node volunteers (tiny-sized models only on 2 cores); paced: the
                            benchmark-only volunteer that computes nothing but sends frames, states and
                            sync chunks of the true sizes and encodings (use it for base and up)
  --preset NAME             model preset (default tiny); batch 1, seq 32
  --iterations N            measured iterations per size (default 3)
  --warmup N                warm-up iterations per size, not measured (default 1)
  --mb-per-tab N            microbatches per volunteer per iteration (default 2)
  --dp exact|diloco         data parallelism inside a stage (default exact)
  --dp-every H              diloco sync interval (default ${DEFAULT_DP.every})
  --dp-fragments F          Streaming DiLoCo fragments (default 1)
  --dp-overlap TAU          Streaming DiLoCo overlap in iterations (default 0)
  --link UP,DOWN,MS         every volunteer behind its own emulated link (Mbit/s up, down, one-way ms)
  --warm-fast               links unshaped until every volunteer is placed, shaped from the warm-up on
  --heartbeat-timeout MS    the coordinator's heartbeat timeout (default ${DEFAULT_COORDINATOR.heartbeatTimeoutMs})
  --codec-ms MS             paced volunteers: ms per frame or sync chunk encoded (default 5)
  --help                    this text
`;

async function main(): Promise<void> {
  const f = flags(process.argv.slice(2), {
    help: 'boolean',
    tabs: 'string',
    pace: 'string',
    iterations: 'string',
    warmup: 'string',
    'mb-per-tab': 'string',
    child: 'string',
    count: 'string',
    name: 'string',
    preset: 'string',
    dp: 'string',
    'dp-every': 'string',
    'dp-fragments': 'string',
    'dp-overlap': 'string',
    link: 'string',
    volunteer: 'string',
    'codec-ms': 'string',
    'warm-fast': 'boolean',
    'heartbeat-timeout': 'string',
  });
  if (f.help) return void process.stdout.write(HELP);
  const link = parseLink(f.link as string | undefined);
  const dp = String(f.dp ?? 'exact') as DpMode;
  if (!DP_MODES.includes(dp)) throw new Error(`--dp must be one of ${DP_MODES.join(', ')}`);
  const volunteer = String(f.volunteer ?? 'node') as VolunteerKind;
  if (volunteer !== 'node' && volunteer !== 'paced') throw new Error('--volunteer must be node or paced');
  const setup: Setup = { preset: String(f.preset ?? 'tiny'), dp, every: Number(f['dp-every'] ?? DEFAULT_DP.every), streaming: { fragments: Number(f['dp-fragments'] ?? 1), overlap: Number(f['dp-overlap'] ?? 0) }, link, volunteer, codecMs: Number(f['codec-ms'] ?? 5), warmFast: f['warm-fast'] === true, heartbeatTimeoutMs: Number(f['heartbeat-timeout'] ?? DEFAULT_COORDINATOR.heartbeatTimeoutMs) };
  if (typeof f.child === 'string') return child(f.child, Number(f.count), Number(f.pace), String(f.name), link, volunteer, setup.preset, dp, setup.every, setup.codecMs, setup.warmFast);
  const tabsList = String(f.tabs ?? '4,8,16,32').split(',').map(Number);
  const paceMs = Number(f.pace ?? 300);
  const iterations = Number(f.iterations ?? 3);
  const warmup = Number(f.warmup ?? 1);
  const mbPerTab = Number(f['mb-per-tab'] ?? 2);
  console.log(`bench:scaling  ${machine()}`);
  const pacing =
    setup.volunteer === 'paced'
      ? `benchmark-only PACED volunteers (no compute; ${paceMs} ms per forward task, ${2 * paceMs} ms per backward, +${setup.codecMs} ms per frame or sync chunk; frames, bundles and sync chunks of the true sizes and encodings)`
      : `real Node volunteers, every task PACED to >= ${paceMs} ms wall time (simulated devices of fixed speed, so the 2-core CPU is not what is measured)`;
  console.log(
    `S=${STAGES}, ${setup.preset} preset (batch 1, seq 32); --dp ${setup.dp}${setup.dp === 'diloco' ? ` every ${setup.every}${setup.streaming.fragments > 1 || setup.streaming.overlap > 0 ? ` fragments ${setup.streaming.fragments} overlap ${setup.streaming.overlap}` : ''}` : ''}; links ${setup.link ? `${setup.link.upMbps}/${setup.link.downMbps} Mbit/s, ${setup.link.latencyMs} ms per volunteer` : 'loopback'}; ${pacing};` +
      `${setup.warmFast && setup.link ? ' links unshaped until every volunteer is placed (joins), shaped for the warm-up and the measured window;' : ''} ${mbPerTab} microbatches per volunteer per iteration (weak scaling); coordinator in this process, volunteers in child processes (${PER_CHILD} per process); ${warmup} warm-up + ${iterations} measured iterations per size`,
  );
  const rows: Row[] = [];
  for (const n of tabsList) {
    const r = await measure(n, paceMs, mbPerTab, iterations, warmup, setup);
    rows.push(r);
    // The whole row as soon as it is measured: a later size that fails must not lose it.
    console.error(
      `  N=${n}: ${fmt(r.tokensPerSec, 1)} tokens/s (${fmt(r.tokensPerSec / rows[0]!.tokensPerSec / (n / rows[0]!.tabs), 2)} of linear vs N=${rows[0]!.tabs}), iteration ${fmt(r.iterSeconds, 2)} s, gap p50/max ${fmt(r.gapP50, 1)}/${fmt(r.gapMax, 1)} s, ` +
        `${fmt(r.bytesPerReplicaIteration / 1e6, 4)} MB/replica-iter through the coordinator, placed in ${fmt(r.placeSeconds, 1)} s (${r.joins.joiners} joins, ${r.joins.fanouts} pulls, largest pull ${fmt(r.joins.pullMax, 1)} s, push ${fmt(r.joins.pushMax, 1)} s)`,
    );
  }
  const base = rows[0]!;
  console.log(
    table(
      ['tabs', 'replicas/stage', 'microbatches', 'tokens/s', 'x N=' + base.tabs, 'of linear', 'iteration s', 'gap p50/max s', 'coord CPU', 'relay MB/s', 'reduce+sync MB/s', 'coord MB/iter', 'MB/replica-iter', 'link up mean/max', 'link down mean/max'],
      rows.map((r) => {
        const speedup = r.tokensPerSec / base.tokensPerSec;
        const use = (k: 'up' | 'down') => (r.links?.length ? `${fmt((r.links.reduce((a, u) => a + u[k], 0) / r.links.length) * 100, 0)}%/${fmt(Math.max(...r.links.map((u) => u[k])) * 100, 0)}%` : '-');
        return [r.tabs, r.tabs / STAGES, r.microbatches, fmt(r.tokensPerSec, 1), fmt(speedup, 2), fmt(speedup / (r.tabs / base.tabs), 2), fmt(r.iterSeconds, 2), `${fmt(r.gapP50, 1)}/${fmt(r.gapMax, 1)}`, `${fmt(r.cpuShare * 100, 0)}%`, fmt(r.relayMBs, 2), fmt(r.reductionMBs, 2), fmt(r.bytesPerIteration / 1e6, 3), fmt(r.bytesPerReplicaIteration / 1e6, 4), use('up'), use('down')];
      }),
    ),
  );
  for (const r of rows) if (r.links) console.log(`N=${r.tabs} each tab's link use, up/down % by stage: ${formatLinkUse(r.links)}`);
  for (const r of rows)
    console.log(
      `N=${r.tabs} placement: every volunteer placed in ${fmt(r.placeSeconds, 1)} s; ${r.joins.joiners} joins through ${r.joins.fanouts} pull(s) of a stage state` +
        (r.joins.fanouts ? ` (largest pull ${fmt(r.joins.pullMax, 1)} s, largest push to one joiner ${fmt(r.joins.pushMax, 1)} s)` : ''),
    );
  const falls = rows.find((r) => r.tokensPerSec / base.tokensPerSec / (r.tabs / base.tabs) < 0.9);
  console.log(
    falls
      ? `scaling falls below 0.9 of linear at N=${falls.tabs} (coordinator CPU ${fmt(falls.cpuShare * 100, 0)}% of a core: ${falls.cpuShare > 0.7 ? 'the coordinator is the limit' : 'the barrier (gradient reduction, fill and drain of the pipeline) grows with the group size'})`
      : `scaling stays at or above 0.9 of linear up to N=${rows.at(-1)!.tabs}`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
