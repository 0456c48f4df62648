/**
 * `npm start`: builds the client if needed and runs the coordinator (volunteer page at /,
 * dashboard at /dashboard, /metrics, /healthz). `npm run swarm -- --tabs N` also opens N headless
 * Chromium volunteers so a machine without a GPU shows a training run.
 */
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { existsSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Coordinator, DEFAULT_COORDINATOR, type CoordinatorOptions } from './server.js';
import { DEFAULT_SETTINGS, RECOVERY_STRATEGIES, wireOf, type RecoveryStrategy, type RunSettings } from '../shared/run-settings.js';
import { WIRE_ENCODINGS, isWireEncoding } from '../shared/protocol/wire-encoding.js';
import { ConfigError, presetNames } from '../shared/model/config.js';
import { DataError } from '../shared/data/dataset.js';
import { TokenizerError } from '../shared/data/tokenizer.js';
import { AVERAGE_WEIGHTINGS, type AverageWeighting } from '../shared/recovery/average.js';
import { findResumableRun } from './resume.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const d = DEFAULT_COORDINATOR;
const s = DEFAULT_SETTINGS;

const HELP = `Usage: npm start -- [options]        (npm run swarm -- --tabs N adds headless volunteers)

Runs the swarm coordinator: volunteer page at /, dashboard at /dashboard, Prometheus metrics at
/metrics, health at /healthz, all on one port.

Server
  --port <n>               port (default ${d.port}; env PORT)
  --host <addr>            bind address (default ${d.host}: this machine only; 0.0.0.0 to accept volunteers
                           from the network)
  --tabs <n>               also launch n headless Chromium volunteers (WebGPU via SwiftShader)
  --new-run                do not resume the unfinished run found in --data-dir
  --resume-wait <ms>       how long a resumed run waits for its tabs (default ${d.resumeWaitMs})
  --data-dir <dir>         run history (SQLite: runs, per-iteration metrics, event log; never weights)
                           lives here and survives restarts (default .data/ in the repository)
  --operator-token <t>     the dashboard's operator token (env OPERATOR_TOKEN; default: a random token
                           per start, printed with the dashboard URL)
  --rebuild                rebuild the client even if dist/client is up to date
  --skip-build             never build the client (pages answer 503 until it is built)
Run
  --preset <${presetNames().join('|')}>  model size (default ${s.preset}; base is sized for real GPUs)
  --stages <n>             pipeline stages (default ${s.stages})
  --microbatches <n>       microbatches per iteration (default ${s.microbatches})
  --batch <n>              sequences per microbatch (default ${s.batch})
  --seq <n>                sequence length (default: the preset's)
  --lr <x>                 Adam learning rate (default ${s.lr})
  --seed <n>               init and data seed (default ${s.seed})
  --data <file>            UTF-8 training text (default: the shipped corpus)
  --wire <${WIRE_ENCODINGS.join('|')}>     how activations and their gradients travel between stages: float32,
                           float16, or 8-bit blockwise (128 values per float32 scale) (default ${wireOf(s)};
                           tokens, targets and weight transfers stay exact; docs/wire.md)
  --max-iterations <n>     stop training after n iterations (default: never)
  --eval-every <n>         validation every n iterations (default ${d.evalEvery}; 0 = never)
  --eval-batches <n>       validation batches (default ${d.evalBatches})
Recovery
  --recovery <s>           ${RECOVERY_STRATEGIES.join(' | ')} (default ${s.recovery})
  --lr-scale <x>           learning-rate multiplier for a rebuilt stage (default ${d.recovery.lrScale})
  --replica-every <n>      refresh CheckFree+ embedding/head replicas every n iterations (default ${d.recovery.replicaEvery})
  --weighting <w>          CheckFree neighbour weighting: ${AVERAGE_WEIGHTINGS.join(' | ')} (default ${d.recovery.weighting})
  --checkpoint-every <n|auto>  checkpoint baseline interval in iterations; auto = Young/Daly
                           sqrt(2*C/lambda) from the measured checkpoint cost C (default ${d.recovery.checkpointEvery})
  --failure-rate <pct>     hourly failure rate per stage assumed by auto (default ${d.recovery.expectedFailureRate * 100})
  --grace <ms>             a disconnected tab keeps its stage this long (default ${d.graceMs})
  --heartbeat-timeout <ms> a tab silent this long is lost (default ${d.heartbeatTimeoutMs})
  -h, --help               this text
`;

/** Whether two run settings describe the same run (what a resume requires). */
function sameRunSettings(a: RunSettings, b: RunSettings): boolean {
  const keys: (keyof RunSettings)[] = ['preset', 'stages', 'microbatches', 'batch', 'seqLen', 'lr', 'seed', 'recovery'];
  return keys.every((k) => (a[k] ?? null) === (b[k] ?? null)) && wireOf(a) === wireOf(b);
}

function clientStale(): boolean {
  const out = join(ROOT, 'dist/client/index.html');
  if (!existsSync(out)) return true;
  const built = statSync(out).mtimeMs;
  const newest = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
      const p = join(dir, e.name);
      return Math.max(m, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
    }, 0);
  return Math.max(newest(join(ROOT, 'client')), newest(join(ROOT, 'shared'))) > built;
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      tabs: { type: 'string' },
      rebuild: { type: 'boolean' },
      preset: { type: 'string' },
      stages: { type: 'string' },
      microbatches: { type: 'string' },
      batch: { type: 'string' },
      seq: { type: 'string' },
      lr: { type: 'string' },
      seed: { type: 'string' },
      data: { type: 'string' },
      'max-iterations': { type: 'string' },
      'eval-every': { type: 'string' },
      'eval-batches': { type: 'string' },
      recovery: { type: 'string' },
      wire: { type: 'string' },
      'lr-scale': { type: 'string' },
      'replica-every': { type: 'string' },
      weighting: { type: 'string' },
      grace: { type: 'string' },
      'checkpoint-every': { type: 'string' },
      'failure-rate': { type: 'string' },
      'heartbeat-timeout': { type: 'string' },
      'data-dir': { type: 'string' },
      'new-run': { type: 'boolean' },
      'skip-build': { type: 'boolean' },
      'resume-wait': { type: 'string' },
      'operator-token': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) {
    process.stdout.write(HELP);
    return;
  }
  const num = (name: keyof typeof v, dflt: number): number => {
    const raw = v[name];
    if (raw === undefined) return dflt;
    const n = Number(raw);
    if (!Number.isFinite(n)) throw new ConfigError(`--${name} must be a number, got "${String(raw)}"`);
    return n;
  };
  const recovery = (v.recovery ?? s.recovery) as RecoveryStrategy;
  if (!RECOVERY_STRATEGIES.includes(recovery)) throw new ConfigError(`unknown --recovery "${recovery}"; choose one of: ${RECOVERY_STRATEGIES.join(', ')}`);
  const wire = v.wire ?? wireOf(s);
  if (!isWireEncoding(wire)) throw new ConfigError(`unknown --wire "${wire}"; choose one of: ${WIRE_ENCODINGS.join(', ')}`);
  const weighting = (v.weighting ?? d.recovery.weighting) as AverageWeighting;
  if (!AVERAGE_WEIGHTINGS.includes(weighting)) throw new ConfigError(`unknown --weighting "${weighting}"; choose one of: ${AVERAGE_WEIGHTINGS.join(', ')}`);
  const opts: CoordinatorOptions = {
    ...d,
    port: num('port', Number(process.env.PORT ?? d.port)),
    host: v.host ?? d.host,
    data: v.data,
    evalEvery: num('eval-every', d.evalEvery),
    evalBatches: num('eval-batches', d.evalBatches),
    maxIterations: num('max-iterations', 0),
    graceMs: num('grace', d.graceMs),
    heartbeatTimeoutMs: num('heartbeat-timeout', d.heartbeatTimeoutMs),
    clientDir: join(ROOT, 'dist/client'),
    dataDir: v['data-dir'] ?? join(ROOT, '.data'),
    operatorToken: v['operator-token'] ?? (process.env.OPERATOR_TOKEN || undefined),
    settings: {
      preset: v.preset ?? s.preset,
      stages: num('stages', s.stages),
      microbatches: num('microbatches', s.microbatches),
      batch: num('batch', s.batch),
      seqLen: v.seq === undefined ? undefined : num('seq', 0),
      lr: num('lr', s.lr),
      seed: num('seed', s.seed),
      recovery,
      wire,
    },
    recovery: {
      ...d.recovery,
      lrScale: num('lr-scale', d.recovery.lrScale),
      replicaEvery: num('replica-every', d.recovery.replicaEvery),
      weighting,
      checkpointEvery: v['checkpoint-every'] === 'auto' ? 'auto' : num('checkpoint-every', d.recovery.checkpointEvery as number),
      expectedFailureRate: num('failure-rate', d.recovery.expectedFailureRate * 100) / 100,
    },
  };
  // A run left unfinished in this data directory (e.g. the coordinator was killed) is resumed:
  // its tabs reconnect with their weights. --new-run starts afresh instead.
  let resumable = !v['new-run'] && opts.dataDir ? findResumableRun(opts.dataDir) : null;
  if (resumable && !sameRunSettings(resumable.settings, opts.settings)) {
    console.log(`the unfinished run ${resumable.id} in ${opts.dataDir} has other settings; starting a new run (its history stays in the store)`);
    resumable = null;
  }
  if (resumable) {
    opts.settings = resumable.settings;
    opts.maxIterations = resumable.maxIterations;
    opts.resumeRun = { id: resumable.id, iteration: resumable.iteration };
    opts.resumeWaitMs = num('resume-wait', d.resumeWaitMs);
    console.log(
      `resuming run ${resumable.id} at iteration ${resumable.iteration}: its tabs have ${opts.resumeWaitMs} ms to come back (--new-run starts a new run instead)`,
    );
  }
  if (!v['skip-build'] && (v.rebuild || clientStale())) {
    console.log('building the client (vite build) ...');
    const { build } = await import('vite');
    await build({ configFile: join(ROOT, 'vite.config.ts'), logLevel: 'warn' });
  }
  const coord = new Coordinator(opts);
  const url = await coord.listen();
  console.log(
    `\n  volunteer swarm coordinator ready\n  volunteers: ${url}/\n  dashboard:  ${url}/dashboard#token=${coord.operatorToken}\n` +
      `              (operator only: the token is the password; run history in ${coord.store.path})\n  metrics:    ${url}/metrics\n`,
  );
  if (opts.host === '127.0.0.1') console.log('  (bound to 127.0.0.1: only this machine can join; use --host 0.0.0.0 to accept volunteers from the network)\n');
  const tabs = num('tabs', 0);
  let swarm: { close(): Promise<void> } | null = null;
  if (tabs > 0) {
    execFileSync('bash', [join(ROOT, 'scripts/ensure-chromium.sh')], { stdio: 'inherit' });
    const { launchBrowserTabs } = await import('./headless-volunteers.js');
    swarm = await launchBrowserTabs(url, tabs);
    console.log(`  launched ${tabs} headless Chromium volunteer tab(s)\n`);
  }
  const shutdown = async () => {
    await swarm?.close().catch(() => {});
    await coord.close();
    process.exit(0);
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

main().catch((e: unknown) => {
  if (e instanceof ConfigError || e instanceof DataError || e instanceof TokenizerError || (e as NodeJS.ErrnoException).code === 'EADDRINUSE') {
    console.error(`error: ${(e as Error).message}`);
    process.exit(2);
  }
  console.error(e);
  process.exit(1);
});
