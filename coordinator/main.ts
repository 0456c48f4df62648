/**
 * `npm start`: builds the client if needed and runs the coordinator (volunteer page at /,
 * dashboard at /dashboard, /metrics, /healthz). `npm run swarm -- --tabs N` also opens N headless
 * Chromium volunteers so a machine without a GPU shows a training run.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, statSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Coordinator, DEFAULT_COORDINATOR, type CoordinatorOptions } from './server.js';
import { wireOf, resumeDataMismatch, sameRunSettings, type RecoveryStrategy, type RunSettings } from '../shared/run-settings.js';
import { prepareRunData } from '../trainer/corpus/run-data.js';

import type { DpMode } from '../shared/dp/dp-settings.js';
import { ConfigError } from '../shared/model/config.js';
import { DataError } from '../shared/data/dataset.js';
import { TokenizerError } from '../shared/data/tokenizer.js';
import type { AverageWeighting } from '../shared/recovery/average.js';
import { helpText, printableSettings, type FlagName } from './cli/flags.js';
import { resolveSettings } from './cli/config-file.js';
import { tlsFromSettings } from './gateway/tls.js';
import { findResumableRun } from './recovery/resume.js';
import { ProcessGuard } from './cli/process-guard.js';
import type { EdgePolicy } from '../shared/recovery/plan.js';
import type { WireEncoding } from '../shared/protocol/wire-encoding.js';
import { streamingJoinWarning, streamingOf, type StreamingMerge } from '../shared/dp/streaming.js';
import type { SchedulerKind } from '../shared/schedule/skip-request.js';
import type { Transport } from '../shared/protocol/p2p-messages.js';
import { isStripeCount, MAX_STRIPES } from '../shared/protocol/signal.js';
import { checkIceServers, type P2pOptions } from './gateway/p2p-signalling.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const d = DEFAULT_COORDINATOR;



/** The data fields of run settings (a run stored before they existed gets them on resume). */
function pickData(s: RunSettings): Partial<RunSettings> {
  return { vocabSize: s.vocabSize, corpusHash: s.corpusHash, tokenizerHash: s.tokenizerHash, tokenizer: s.tokenizer };
}

/** The operator token from `--operator-token-file`: its first line, at least 16 characters. */
function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`--operator-token-file: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const token = text.split(/\r?\n/)[0]!.trim();
  if (token.length < 16) throw new ConfigError(`--operator-token-file: ${path} must hold a token of at least 16 characters on its first line`);
  return token;
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

/** `--transport`, `--ice-server`, `--turn-secret`, `--turn-ttl`, `--p2p-stripes`, checked (a bad entry stops the start with its reason). */
function p2pFromFlags(transport: Transport, ice: string | undefined, turnSecret: string | undefined, turnTtlS: number, stripes: number): Partial<P2pOptions> {
  const iceServers = (ice ?? '').split(',').map((u) => u.trim()).filter(Boolean);
  checkIceServers(iceServers, turnSecret);
  if (!Number.isInteger(turnTtlS) || turnTtlS < 60 || turnTtlS > 7 * 86400) throw new Error(`--turn-ttl ${turnTtlS}: 60 .. 604800 seconds`);
  if (!isStripeCount(stripes)) throw new Error(`--p2p-stripes ${stripes}: 1 .. ${MAX_STRIPES}`);
  return { transport, iceServers, turnTtlS, stripes, ...(turnSecret ? { turnSecret } : {}) };
}

async function main(): Promise<void> {
  const { values: v } = resolveSettings(process.argv.slice(2));
  if (v.help) {
    process.stdout.write(helpText());
    return;
  }
  if (v['print-config']) {
    process.stdout.write(JSON.stringify(printableSettings(v), null, 2) + '\n');
    return;
  }
  const num = (name: FlagName): number => v[name] as number;
  const str = (name: FlagName): string | undefined => v[name] as string | undefined;
  const dataDir = str('data-dir') ?? join(ROOT, '.data');
  const tls = await tlsFromSettings({ tls: str('tls'), cert: str('tls-cert'), key: str('tls-key'), host: str('host')!, dir: join(dataDir, 'tls') });
  const opts: CoordinatorOptions = {
    ...d,
    port: num('port'),
    host: str('host')!,
    data: str('data'),
    evalEvery: num('eval-every'),
    evalBatches: num('eval-batches'),
    maxIterations: num('max-iterations'),
    graceMs: num('grace'),
    heartbeatTimeoutMs: num('heartbeat-timeout'),
    vacancyAlertMs: num('vacancy-alert') * 1000,
    clientDir: join(ROOT, 'dist/client'),
    dataDir,
    operatorToken: str('operator-token-file') !== undefined ? readTokenFile(str('operator-token-file')!) : str('operator-token') || undefined,
    publicHosts: (str('public-host') ?? '').split(',').map((h) => h.trim()).filter(Boolean),
    maxReplicas: v['max-replicas'] === undefined ? d.maxReplicas : Math.max(1, Math.floor(num('max-replicas'))),
    rebalanceEvery: Math.max(0, Math.floor(num('rebalance-every'))),
    replicaSyncEvery: Math.max(0, Math.floor(num('replica-sync-every'))),
    maxInFlight: Math.max(1, Math.floor(num('max-in-flight'))),
    skipRatio: num('skip-ratio'),
    skipSchedule: str('skip-schedule') as SchedulerKind,
    tls: tls?.credentials ?? null,
    trustProxy: v['trust-proxy'] === true,
    sampleEverySeconds: num('sample-every'),
    p2p: p2pFromFlags(str('transport') as Transport, str('ice-server'), str('turn-secret'), num('turn-ttl'), num('p2p-stripes')),
    settings: {
      preset: str('preset')!,
      stages: num('stages'),
      microbatches: num('microbatches'),
      batch: num('batch'),
      seqLen: v.seq === undefined ? undefined : num('seq'),
      lr: num('lr'),
      seed: num('seed'),
      recovery: str('recovery') as RecoveryStrategy,
      wire: str('wire') as WireEncoding,
      dp: { mode: str('dp') as DpMode, every: num('dp-every'), outerLr: num('outer-lr'), outerMomentum: num('outer-momentum'), wire: str('dp-wire') as WireEncoding, fragments: num('dp-fragments'), overlap: num('dp-overlap'), merge: str('dp-merge') as StreamingMerge, warmup: num('dp-warmup') },
    },
    recovery: {
      ...d.recovery,
      lrScale: num('lr-scale'),
      replicaEvery: num('replica-every'),
      weighting: str('weighting') as AverageWeighting,
      edge: str('edge') as EdgePolicy,
      checkpointEvery: v['checkpoint-every'] as number | 'auto' | 'cpsr',
      cpsrXi: num('cpsr-xi'),
      cpsrFitDuty: num('cpsr-fit-duty'),
      cpsrMaxErrorRatio: num('cpsr-max-error'),
      expectedFailureRate: num('failure-rate') / 100,
    },
  };
  const { cpsrXi, cpsrFitDuty, cpsrMaxErrorRatio } = opts.recovery;
  if (!(cpsrXi! > 0)) throw new ConfigError(`--cpsr-xi must be > 0, got ${cpsrXi}`);
  if (!(cpsrFitDuty! > 0 && cpsrFitDuty! <= 1)) throw new ConfigError(`--cpsr-fit-duty must be in (0, 1], got ${cpsrFitDuty}`);
  if (!(cpsrMaxErrorRatio! > 0 && Number.isFinite(cpsrMaxErrorRatio))) throw new ConfigError(`--cpsr-max-error must be a finite number > 0, got ${cpsrMaxErrorRatio}`);
  // Checkpoints (the checkpoint baseline) live with the run history they are recorded in.
  opts.recovery.checkpointDir = join(dataDir, 'checkpoints');
  if (tls) console.log(`  HTTPS: ${tls.description}\n  certificate SHA-256 fingerprint: ${tls.fingerprint}`);
  // A run left unfinished in this data directory (e.g. the coordinator was killed) is resumed:
  // its tabs reconnect with their weights. --new-run starts afresh instead.
  let resumable = !v['new-run'] && opts.dataDir ? findResumableRun(opts.dataDir) : null;
  if (resumable && !sameRunSettings(resumable.settings, opts.settings)) {
    console.log(`the unfinished run ${resumable.id} in ${opts.dataDir} has other settings; starting a new run (its history stays in the store)`);
    resumable = null;
  }
  // The corpus is tokenised (once, cached) before anything starts: the vocabulary sizes the model.
  const runData = await prepareRunData(opts.settings, { data: str('data'), field: str('data-field'), tokenizer: str('tokenizer'), dataDir, log: (l) => console.log(`  ${l}`) });
  opts.settings = runData.settings;
  opts.dataset = runData.prepared.dataset;
  opts.tokenizerImpl = runData.prepared.tokenizer;
  console.log(runData.memoryTable);
  const joinWarning = opts.settings.dp?.mode === 'diloco' ? streamingJoinWarning(streamingOf(opts.settings.dp)) : null;
  if (joinWarning) console.log(`  warning: ${joinWarning}`);
  const mismatch = resumable && !v['new-run'] ? resumeDataMismatch(resumable.settings, opts.settings) : null;
  if (mismatch) throw new DataError(`cannot resume run ${resumable!.id} in ${opts.dataDir}: ${mismatch}; pass its --data and --tokenizer, or --new-run`);
  if (resumable) {
    opts.settings = { ...resumable.settings, ...pickData(opts.settings) };
    opts.maxIterations = resumable.maxIterations;
    opts.resumeRun = { id: resumable.id, iteration: resumable.iteration };
    opts.resumeWaitMs = num('resume-wait');
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
  new ProcessGuard({ log: coord.log, metrics: coord.metrics }).install();
  const url = await coord.listen();
  const tokenFile = str('operator-token-file');
  const dashboard = tokenFile !== undefined ? `${url}/dashboard  (token: the one in ${tokenFile})` : `${url}/dashboard#token=${coord.operatorToken}`;
  console.log(
    `\n  volunteer swarm coordinator ready\n  volunteers: ${url}/\n  dashboard:  ${dashboard}\n` +
      `              (operator only: the token is the password; run history in ${coord.store.path})\n  metrics:    ${url}/metrics\n`,
  );
  if (opts.host === '127.0.0.1') console.log('  (bound to 127.0.0.1: only this machine can join; use --host 0.0.0.0 to accept volunteers from the network)\n');
  const tabs = num('tabs');
  let swarm: { close(): Promise<void> } | null = null;
  if (tabs > 0) {
    execFileSync('bash', [join(ROOT, 'scripts/ensure-chromium.sh')], { stdio: 'inherit' });
    const { launchBrowserTabs } = await import('./cli/headless-volunteers.js');
    swarm = await launchBrowserTabs(url, tabs, { trustCertificate: tls?.credentials.cert });
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
