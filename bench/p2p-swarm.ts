/**
 * The real swarm, relay vs peer to peer (issue 23): a coordinator and Node volunteers (one per
 * stage) train the same run with `--transport relay` and `--transport p2p`, alternated; printed
 * side by side: seconds per iteration, activation/gradient bytes the coordinator relayed per
 * iteration, bytes tabs sent each other, fallbacks.
 *
 *   npm run bench:p2p-swarm                                (tiny, 4 stages, 10 iterations, 2 rounds)
 *   npm run bench:p2p-swarm -- --preset small --iterations 5 --pace 100 --rounds 1
 *
 * Links are NOT emulated: every tab and the coordinator share this machine's loopback, so this
 * measures what leaves the coordinator and the transports' own overhead, not the issue's home-link
 * target (WebRTC's UDP does not pass testing/link-emulator.ts's TCP proxy; that needs network
 * namespaces with tbf, or TURN over TCP through the emulator). `--pace` (ms) makes every task last
 * at least that long, so compute on a shared CPU is not what is measured.
 */
import { Coordinator, DEFAULT_COORDINATOR } from '../coordinator/server.js';
import { startNodeVolunteer, type NodeVolunteer } from '../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../shared/run-settings.js';
import type { Transport } from '../shared/protocol/p2p-messages.js';
import { until } from '../testing/until.js';
import { flags, fmt, fmtBytes, list, machine, table } from './util.js';

const f = flags(process.argv.slice(2), { preset: 'string', stages: 'string', iterations: 'string', warmup: 'string', pace: 'string', rounds: 'string', batch: 'string', wire: 'string' });
const stages = Number(f.stages ?? 4);
const iterations = Number(f.iterations ?? 10);
const warmup = Number(f.warmup ?? 2);
const pace = Number(f.pace ?? 0);
const rounds = Number(f.rounds ?? 2);
const settings: RunSettings = {
  ...DEFAULT_SETTINGS,
  preset: (f.preset as string) ?? 'tiny',
  stages,
  microbatches: 4,
  batch: Number(f.batch ?? 2),
  recovery: 'checkfree',
  ...(f.wire ? { wire: f.wire as RunSettings['wire'] } : {}),
};

async function sum(coord: Coordinator, name: string, label?: string): Promise<number> {
  const text = await coord.metrics.text();
  let total = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) if (!label || (m[1] ?? '').includes(label)) total += Number(m[2]);
  return total;
}

async function run(transport: Transport): Promise<(string | number)[]> {
  const coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, evalEvery: 0, maxReplicas: 1, maxIterations: warmup + iterations, p2p: { transport } });
  const vols: NodeVolunteer[] = [];
  try {
    const url = await coord.listen();
    for (let i = 0; i < stages; i++) vols.push(await startNodeVolunteer(url, { name: `b${i}`, ...(pace ? { paceMs: pace } : {}) }));
    await until(() => coord.scheduler.iteration >= warmup, 'warm-up', 600_000);
    const relay0 = (await sum(coord, 'swarm_relay_bytes_total', 'forward')) + (await sum(coord, 'swarm_relay_bytes_total', 'backward'));
    const p2p0 = await sum(coord, 'swarm_p2p_bytes_total');
    const t0 = Date.now();
    await until(() => coord.scheduler.iteration >= warmup + iterations, `${iterations} iterations`, 1_200_000);
    const s = (Date.now() - t0) / 1000 / iterations;
    const relay = ((await sum(coord, 'swarm_relay_bytes_total', 'forward')) + (await sum(coord, 'swarm_relay_bytes_total', 'backward')) - relay0) / iterations;
    const p2p = ((await sum(coord, 'swarm_p2p_bytes_total')) - p2p0) / iterations;
    const share = relay + p2p > 0 ? (100 * relay) / (relay + p2p) : 0;
    return [transport, fmt(s, 3), fmtBytes(relay), fmtBytes(p2p), `${fmt(share, 1)}%`, await sum(coord, 'swarm_p2p_fallbacks_total')];
  } finally {
    for (const v of vols) v.kill();
    await coord.close();
  }
}

console.log(`bench:p2p-swarm  ${machine()}`);
console.log(`preset ${settings.preset}, ${stages} stages (one tab each), ${settings.microbatches} microbatches x batch ${settings.batch}, wire ${settings.wire ?? 'default'}, ${iterations} iterations after ${warmup} warm-up, pace ${pace} ms; loopback, links not emulated`);
const rows: (string | number)[][] = [];
for (let r = 0; r < rounds; r++) for (const t of list(undefined, ['relay', 'p2p']) as Transport[]) rows.push(await run(t));
console.log(table(['transport', 's/iteration', 'coordinator relayed /it', 'peer to peer /it', 'coordinator share', 'fallbacks'], rows));
process.exit(0);
