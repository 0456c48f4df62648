/**
 * The coordinator's settings, in one table: every command-line flag, its type, default and help
 * line. `--help`, the keys a `--config` file may hold and `--print-config` are all derived from
 * it, so they cannot drift apart. A config file's values are merged under the flags (flags win).
 */
import { parseArgs } from 'node:util';
import { DEFAULT_COORDINATOR as d } from '../options.js';
import { DEFAULT_SETTINGS as s, DEFAULT_WIRE, RECOVERY_STRATEGIES } from '../../shared/run-settings.js';
import { WIRE_ENCODINGS } from '../../shared/protocol/wire-encoding.js';
import { DEFAULT_DP as dp, DP_MODES } from '../../shared/dp/dp-settings.js';
import { STREAMING_MERGES } from '../../shared/dp/streaming.js';
import { ConfigError, presetNames } from '../../shared/model/config.js';
import { AVERAGE_WEIGHTINGS } from '../../shared/recovery/average.js';
import { EDGE_POLICIES } from '../../shared/recovery/plan.js';
import { SCHEDULERS } from '../../shared/schedule/skip-request.js';
import { DEFAULT_INTERVAL_PLANNER } from '../recovery/cpsr-interval-planner.js';
import { TRANSPORTS } from '../../shared/protocol/p2p-messages.js';
import { DEFAULT_P2P as p2p } from '../gateway/p2p-signalling.js';

export type FlagKind = 'number' | 'string' | 'boolean' | 'number|auto';
export type FlagValue = string | number | boolean;

export interface Flag {
  kind: FlagKind;
  section: 'Server' | 'HTTPS and proxies' | 'Run' | 'Recovery' | 'Command';
  /** Placeholder in the help text, e.g. "<ms>". */
  arg?: string;
  help: string;
  /** Effective value when neither the file nor the command line sets it (absent = unset). */
  default?: FlagValue;
  /** Allowed values of a string flag; of a number|auto flag, the words it takes besides 'auto'. */
  choices?: readonly string[];
  /** Command-line only (not a setting): not allowed in a config file, not printed. */
  cliOnly?: boolean;
  /** Secret: --print-config shows that it is set, never its value. */
  secret?: boolean;
  short?: string;
  /** Environment variable read when neither the file nor the command line sets it. */
  env?: string;
}

export const FLAGS = {
  config: { kind: 'string', section: 'Command', arg: '<file>', help: 'read settings from a JSON file whose keys are these flags\' names (flags given here override it)', cliOnly: true },
  'print-config': { kind: 'boolean', section: 'Command', help: 'print the effective settings (defaults < --config file < flags) as JSON and exit', cliOnly: true },
  help: { kind: 'boolean', section: 'Command', help: 'this text', cliOnly: true, short: 'h' },
  port: { kind: 'number', section: 'Server', arg: '<n>', help: 'port (env PORT)', default: d.port, env: 'PORT' },
  host: { kind: 'string', section: 'Server', arg: '<addr>', help: 'bind address (127.0.0.1: this machine only; 0.0.0.0 accepts volunteers from the network)', default: d.host },
  tabs: { kind: 'number', section: 'Server', arg: '<n>', help: 'also launch n headless Chromium volunteers (WebGPU via SwiftShader)', default: 0 },
  'new-run': { kind: 'boolean', section: 'Server', help: 'do not resume the unfinished run found in --data-dir', default: false },
  'resume-wait': { kind: 'number', section: 'Server', arg: '<ms>', help: 'how long a resumed run waits for its tabs', default: d.resumeWaitMs },
  'data-dir': { kind: 'string', section: 'Server', arg: '<dir>', help: 'run history (SQLite: runs, per-iteration metrics, event log; never weights) survives restarts here (default .data/ in the repository)' },
  'operator-token': { kind: 'string', section: 'Server', arg: '<t>', help: 'the dashboard\'s operator token (env OPERATOR_TOKEN; default: a random token per start, printed with the dashboard URL)', secret: true, env: 'OPERATOR_TOKEN' },
  'operator-token-file': { kind: 'string', section: 'Server', arg: '<file>', help: 'read the operator token from this file (first line); it is then never printed or logged (for services whose output is collected)' },
  'public-host': { kind: 'string', section: 'Server', arg: '<names>', help: 'comma list of host names (name or name:port) the coordinator answers besides the bound address, e.g. behind a reverse proxy; any other Host header gets 421' },
  rebuild: { kind: 'boolean', section: 'Server', help: 'rebuild the client even if dist/client is up to date', default: false },
  'skip-build': { kind: 'boolean', section: 'Server', help: 'never build the client (pages answer 503 until it is built)', default: false },
  'sample-every': { kind: 'number', section: 'Server', arg: '<s>', help: 'seconds between the shared "the model now writes" samples on the volunteer page (0 = never)', default: d.sampleEverySeconds },
  transport: { kind: 'string', section: 'Server', arg: '<t>', help: 'how activations and gradients travel between tabs: relay (through the coordinator) | p2p (tab to tab over WebRTC, a frame whose link fails goes through the relay) | auto (p2p; a failing pair is relay-only for a back-off); docs/p2p.md', default: p2p.transport, choices: TRANSPORTS },
  'ice-server': { kind: 'string', section: 'Server', arg: '<urls>', help: 'comma list of STUN/TURN servers tabs use to reach each other (stun:host:3478, turn:host:3478?transport=udp); TURN needs --turn-secret' },
  'turn-secret': { kind: 'string', section: 'Server', arg: '<s>', help: 'coturn\'s static-auth-secret: each tab gets its own TURN credentials, valid --turn-ttl seconds and renewed (env TURN_SECRET)', secret: true, env: 'TURN_SECRET' },
  'p2p-stripes': { kind: 'number', section: 'Server', arg: '<k>', help: 'peer connections per pair of tabs (1 .. 8): each peer frame is cut into up to k parts sent at once, one per connection, so more of it is in flight after an idle gap; docs/p2p.md#striped-frames', default: p2p.stripes },
  'turn-ttl': { kind: 'number', section: 'Server', arg: '<s>', help: 'lifetime of minted TURN credentials in seconds (60 .. 604800)', default: p2p.turnTtlS },
  tls: { kind: 'string', section: 'HTTPS and proxies', arg: 'self-signed', help: 'serve HTTPS with a certificate made for this machine\'s names (kept in --data-dir/tls; its SHA-256 fingerprint is printed)', choices: ['self-signed'] },
  'tls-cert': { kind: 'string', section: 'HTTPS and proxies', arg: '<pem>', help: 'serve HTTPS with this certificate (PEM, chain included); needs --tls-key. Plain HTTP on the port is redirected' },
  'tls-key': { kind: 'string', section: 'HTTPS and proxies', arg: '<pem>', help: 'the certificate\'s private key (PEM)' },
  'trust-proxy': { kind: 'boolean', section: 'HTTPS and proxies', help: 'a reverse proxy sits in front: take the client address from the last X-Forwarded-For entry (rate limits, logs)', default: false },
  preset: { kind: 'string', section: 'Run', arg: '<name>', help: `model size: ${presetNames().join(' | ')} (base is sized for real GPUs)`, default: s.preset, choices: presetNames() },
  stages: { kind: 'number', section: 'Run', arg: '<n>', help: 'pipeline stages', default: s.stages },
  microbatches: { kind: 'number', section: 'Run', arg: '<n>', help: 'microbatches per iteration', default: s.microbatches },
  batch: { kind: 'number', section: 'Run', arg: '<n>', help: 'sequences per microbatch', default: s.batch },
  seq: { kind: 'number', section: 'Run', arg: '<n>', help: 'sequence length (default: the preset\'s)' },
  lr: { kind: 'number', section: 'Run', arg: '<x>', help: 'Adam learning rate', default: s.lr },
  seed: { kind: 'number', section: 'Run', arg: '<n>', help: 'init and data seed', default: s.seed },
  data: { kind: 'string', section: 'Run', arg: '<path>', help: 'training text: a UTF-8 file, a folder of them, or JSON Lines with --data-field; gzip allowed; tokenised once into --data-dir/corpus-cache (default: the shipped corpus)' },
  'data-field': { kind: 'string', section: 'Run', arg: '<name>', help: 'read --data as JSON Lines, the text in this field of each record' },
  tokenizer: { kind: 'string', section: 'Run', arg: '<name>', help: 'byte | bpe[:N] (a byte-level BPE of N tokens, default 4096, trained on the corpus and cached) | path to a Hugging Face tokenizer.json', default: 'byte' },
  wire: { kind: 'string', section: 'Run', arg: '<enc>', help: `how relayed activations and their gradients travel: ${WIRE_ENCODINGS.join(' | ')} (int8: blockwise, 128 values per scale; weights and recovery stay float32; docs/wire.md)`, default: DEFAULT_WIRE, choices: WIRE_ENCODINGS },
  'max-iterations': { kind: 'number', section: 'Run', arg: '<n>', help: 'stop training after n iterations (0 = never)', default: 0 },
  'eval-every': { kind: 'number', section: 'Run', arg: '<n>', help: 'validation every n iterations (0 = never)', default: d.evalEvery },
  'eval-batches': { kind: 'number', section: 'Run', arg: '<n>', help: 'validation batches', default: d.evalBatches },
  'max-replicas': { kind: 'number', section: 'Run', arg: '<n>', help: 'most tabs serving one stage (default: no cap); every other tab trains as a replica of the stage where it lifts the bottleneck most; spares exist only when every stage is at the cap' },
  'rebalance-every': { kind: 'number', section: 'Run', arg: '<n>', help: 'consider moving one tab to the bottleneck stage every n iterations, only if that cuts its time per task by at least 20%; with --skip-ratio also swap a slow first/last-stage tab with a fast intermediate one (0 = never)', default: d.rebalanceEvery },
  'replica-sync-every': { kind: 'number', section: 'Run', arg: '<n>', help: 'every n iterations compare the weights of each stage\'s replicas (a fingerprint) and re-sync any that drifted, e.g. on another GPU or backend (0 = never)', default: d.replicaSyncEvery },
  dp: { kind: 'string', section: 'Run', arg: '<mode>', help: 'how a stage\'s replicas combine their work: exact = every iteration their gradients are summed through the coordinator and all take the same step (choose on LAN / datacentre links and small presets: it keeps the loss of one unreplicated stage); diloco = each replica steps on its own gradient and the group averages int8 pseudo-gradients every --dp-every iterations with an outer Nesterov step (choose for home links and base or larger, where the per-iteration gradient exchange limits the swarm; ~1/(4H) of the bytes, loss gap in docs/data-parallel.md)', default: dp.mode, choices: DP_MODES },
  'dp-every': { kind: 'number', section: 'Run', arg: '<H>', help: 'diloco: iterations between syncs of a stage\'s replicas', default: dp.every },
  'outer-lr': { kind: 'number', section: 'Run', arg: '<x>', help: 'diloco: outer Nesterov learning rate', default: dp.outerLr },
  'outer-momentum': { kind: 'number', section: 'Run', arg: '<x>', help: 'diloco: outer Nesterov momentum', default: dp.outerMomentum },
  'dp-wire': { kind: 'string', section: 'Run', arg: '<enc>', help: `diloco: how pseudo-gradients and their mean travel: ${WIRE_ENCODINGS.join(' | ')}`, default: dp.wire, choices: WIRE_ENCODINGS },
  'dp-fragments': { kind: 'number', section: 'Run', arg: '<F>', help: 'diloco: Streaming DiLoCo, split each stage\'s parameters into F contiguous fragments synced at staggered iterations (fragment f after iterations t with (t+1) mod H = floor(f H / F)): each sync moves 1/F of the bytes; F <= H (docs/data-parallel.md, "Streaming")', default: dp.fragments },
  'dp-merge': { kind: 'string', section: 'Run', arg: '<how>', help: 'diloco with --dp-overlap >= 1: how the outer update meets the local weights: mix = 0.5 local + 0.5 global (Streaming DiLoCo\'s); delta = global + the local progress since the sync started', default: dp.merge, choices: STREAMING_MERGES },
  'dp-warmup': { kind: 'number', section: 'Run', arg: '<W>', help: 'diloco: the first W iterations sync after every iteration (H = 1), then every H; plain DiLoCo only (F = 1, tau = 0); with --outer-lr 1 --outer-momentum 0, W = 5 took tiny at H = 20 from +2.9% to +1.7% of exact\'s loss (9 seeds) and small to +1.5% over 200 iterations (6 seeds; docs/data-parallel.md, "Closing the gap")', default: dp.warmup ?? 0 },
  'dp-overlap': { kind: 'number', section: 'Run', arg: '<tau>', help: 'diloco: iterations a fragment\'s sync overlaps with training; its outer update is applied tau iterations later, mixed 0.5/0.5 with the local weights (Streaming DiLoCo); 0 = training waits for the sync; tau <= floor(H / F)', default: dp.overlap },
  'max-in-flight': { kind: 'number', section: 'Run', arg: '<n>', help: 'most microbatches in flight per tab when the scheduler widens 1F1B\'s window (stages x widest group) to overlap measured hop round trips; each costs the tab a stash of activations (base: ~115 MiB); 1 = 1F1B depth only (docs/wire.md)', default: d.maxInFlight },
  'skip-ratio': { kind: 'number', section: 'Run', arg: '<r>', help: 'SkipPipe: each training microbatch skips about r of the stages (0 = full paths); with r > 0 a vacant intermediate stage is skipped instead of waited for (docs/skippipe.md)', default: d.skipRatio },
  'skip-schedule': { kind: 'string', section: 'Run', arg: '<s>', help: `how skip paths are chosen: ${SCHEDULERS.join(' | ')} (collision: over the measured stage times)`, default: d.skipSchedule, choices: SCHEDULERS },
  recovery: { kind: 'string', section: 'Recovery', arg: '<s>', help: RECOVERY_STRATEGIES.join(' | '), default: s.recovery, choices: RECOVERY_STRATEGIES },
  'lr-scale': { kind: 'number', section: 'Recovery', arg: '<x>', help: 'learning-rate multiplier for a rebuilt stage', default: d.recovery.lrScale },
  'replica-every': { kind: 'number', section: 'Recovery', arg: '<n>', help: 'refresh CheckFree+ embedding/head replicas every n iterations', default: d.recovery.replicaEvery },
  weighting: { kind: 'string', section: 'Recovery', arg: '<w>', help: `CheckFree neighbour weighting: ${AVERAGE_WEIGHTINGS.join(' | ')}`, default: d.recovery.weighting, choices: AVERAGE_WEIGHTINGS },
  edge: { kind: 'string', section: 'Recovery', arg: '<reinit|copy>', help: 'plain checkfree at the first/last stage: re-init from the seed (the paper\'s definition) or copy the neighbour\'s blocks + replica, as the reference\'s plain script does', default: d.recovery.edge, choices: EDGE_POLICIES },
  'checkpoint-every': { kind: 'number|auto', section: 'Recovery', arg: '<n|auto|cpsr>', help: 'checkpoint baseline interval in iterations; auto = Young/Daly sqrt(2*C/lambda) from the measured checkpoint cost C; cpsr (with --recovery cpsr) = CPSR\'s planner T_c = tau_1 / (B + lambda sqrt(A / T_s)) from the fitted loss and predictor-error curves, Young/Daly until it can plan (docs/cpsr.md)', default: d.recovery.checkpointEvery, choices: ['cpsr'] },
  'cpsr-fit-duty': { kind: 'number', section: 'Recovery', arg: '<0..1>', help: '--recovery cpsr: most of the wall time the predictor\'s fitting worker thread may spend fitting (it rests t (1/duty - 1) after a fit of t); below 1 where the coordinator has no core to spare, at the price of older fits (docs/cpsr.md)', default: 1 },
  'cpsr-max-error': { kind: 'number', section: 'Recovery', arg: '<x>', help: '--recovery cpsr: the predictor predicts only when its held-out error is below x times the plain restore\'s, else restores plainly and says why; on tiny at a checkpoint every 10, fits of 0.9-1.0 still predicted closer (docs/cpsr.md)', default: 0.9 },
  'cpsr-xi': { kind: 'number', section: 'Recovery', arg: '<x>', help: '--checkpoint-every cpsr: curvature prior xi of the planner (loss per unit of N_p x the predictor\'s mse / 2; not fitted by the curves)', default: DEFAULT_INTERVAL_PLANNER.xi },
  'failure-rate': { kind: 'number', section: 'Recovery', arg: '<pct>', help: 'hourly failure rate per stage assumed by auto', default: d.recovery.expectedFailureRate * 100 },
  grace: { kind: 'number', section: 'Recovery', arg: '<ms>', help: 'a disconnected tab keeps its stage this long', default: d.graceMs },
  'heartbeat-timeout': { kind: 'number', section: 'Recovery', arg: '<ms>', help: 'a tab silent this long is lost', default: d.heartbeatTimeoutMs },
  'vacancy-alert': { kind: 'number', section: 'Recovery', arg: '<s>', help: 'a stage waiting this long for a volunteer raises an alert (event, log, swarm_stage_vacant_seconds, the pages\' status)', default: d.vacancyAlertMs / 1000 },
} as const satisfies Record<string, Flag>;

export type FlagName = keyof typeof FLAGS;
/** Settings by flag name; a missing key is unset. */
export type FlagValues = Partial<Record<FlagName, FlagValue>>;

const flag = (name: string): Flag | undefined => (FLAGS as Record<string, Flag>)[name];
const names = Object.keys(FLAGS) as FlagName[];

/** Checks one value against its flag (from a file: typed JSON; from the command line: text). */
export function checkValue(name: FlagName, raw: unknown, from: 'file' | 'flag'): FlagValue {
  const f: Flag = FLAGS[name];
  const where = from === 'flag' ? `--${name}` : `"${name}"`;
  const asNumber = (v: unknown): number => {
    const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    if (!Number.isFinite(n)) throw new ConfigError(`${where} must be a number, got ${JSON.stringify(raw)}`);
    return n;
  };
  switch (f.kind) {
    case 'boolean':
      if (typeof raw !== 'boolean') throw new ConfigError(`${where} must be true or false, got ${JSON.stringify(raw)}`);
      return raw;
    case 'number':
      if (from === 'file' && typeof raw !== 'number') throw new ConfigError(`${where} must be a number, got ${JSON.stringify(raw)}`);
      return asNumber(raw);
    case 'number|auto':
      return raw === 'auto' || (typeof raw === 'string' && f.choices?.includes(raw)) ? (raw as string) : asNumber(raw);
    case 'string':
      if (typeof raw !== 'string') throw new ConfigError(`${where} must be a string, got ${JSON.stringify(raw)}`);
      if (f.choices && !f.choices.includes(raw)) throw new ConfigError(`${where} must be one of: ${f.choices.join(', ')}; got "${raw}"`);
      return raw;
  }
}

/** The command line's values (only the flags given), checked. */
export function parseFlags(argv: string[]): FlagValues {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const n of names) {
    const f: Flag = FLAGS[n];
    options[n] = { type: f.kind === 'boolean' ? 'boolean' : 'string', ...(f.short ? { short: f.short } : {}) };
  }
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }));
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const out: FlagValues = {};
  for (const n of names) if (values[n] !== undefined) out[n] = checkValue(n, values[n], 'flag');
  return out;
}

/** A config file's settings object, checked: unknown keys and command-only flags are errors naming the key. */
export function checkConfigObject(obj: unknown, file: string): FlagValues {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new ConfigError(`${file}: expected a JSON object of settings`);
  const out: FlagValues = {};
  for (const [key, raw] of Object.entries(obj)) {
    const f = flag(key);
    if (!f) throw new ConfigError(`${file}: unknown key "${key}" (keys are the flags' names, see --help)`);
    if (f.cliOnly) throw new ConfigError(`${file}: "${key}" is a command-line option, not a setting`);
    out[key as FlagName] = checkValue(key as FlagName, raw, 'file');
  }
  return out;
}

/** Defaults, then the environment, then the file, then the flags. */
export function mergeSettings(file: FlagValues, cli: FlagValues, env: Record<string, string | undefined> = process.env): FlagValues {
  const out: FlagValues = {};
  for (const n of names) {
    const f: Flag = FLAGS[n];
    const fromEnv = f.env && env[f.env] ? checkValue(n, env[f.env], 'flag') : undefined;
    const v = cli[n] ?? file[n] ?? fromEnv ?? f.default;
    if (v !== undefined) out[n] = v;
  }
  return out;
}

/** The effective settings as a config file (secrets masked, command-only flags left out). */
export function printableSettings(values: FlagValues): Record<string, FlagValue> {
  const out: Record<string, FlagValue> = {};
  for (const n of names) {
    const f: Flag = FLAGS[n];
    const v = values[n];
    if (f.cliOnly || v === undefined) continue;
    out[n] = f.secret ? '(set; not shown)' : v;
  }
  return out;
}

const HELP_WIDTH = 100;
const HELP_INDENT = 29;

/** Words of `text` in lines of at most `width` characters. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line];
}

const SECTIONS: Flag['section'][] = ['Server', 'HTTPS and proxies', 'Run', 'Recovery', 'Command'];

/** --help, generated from the table. */
export function helpText(): string {
  const sections = SECTIONS;
  const lines = [
    'Usage: npm start -- [options]        (npm run swarm -- --tabs N adds headless volunteers)',
    '',
    'Runs the swarm coordinator: volunteer page at /, dashboard at /dashboard, Prometheus metrics at',
    '/metrics, health at /healthz, all on one port. Every option can also be a key of a --config file.',
  ];
  for (const section of sections) {
    lines.push('', section);
    for (const n of names) {
      const f: Flag = FLAGS[n];
      if (f.section !== section) continue;
      const left = `  ${f.short ? `-${f.short}, ` : ''}--${n}${f.arg ? ` ${f.arg}` : ''}`;
      const dflt = f.default !== undefined && f.kind !== 'boolean' ? ` (default ${f.default})` : '';
      const text = wrap(f.help + dflt, HELP_WIDTH - HELP_INDENT);
      if (left.length >= HELP_INDENT) lines.push(left);
      text.forEach((line, i) => lines.push((i === 0 && left.length < HELP_INDENT ? left.padEnd(HELP_INDENT) : ' '.repeat(HELP_INDENT)) + line));
    }
  }
  return lines.join('\n') + '\n';
}

/** The table as markdown (README's flag table, `npm run flags:doc`): one row per flag, by section. */
export function flagsMarkdown(): string {
  const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/\*/g, '\\*');
  const rows = ['| flag | default | meaning |', '|---|---|---|'];
  for (const section of SECTIONS) {
    rows.push(`| **${section}** | | |`);
    for (const n of names) {
      const f: Flag = FLAGS[n];
      if (f.section !== section) continue;
      const name = `\`${f.short ? `-${f.short}, ` : ''}--${n}${f.arg ? ` ${f.arg}` : ''}\``.replace(/\|/g, '\\|');
      const dflt = f.default === undefined ? '' : f.kind === 'boolean' ? (f.default ? 'on' : 'off') : `\`${f.default}\``;
      rows.push(`| ${name} | ${dflt} | ${cell(f.help)} |`);
    }
  }
  return rows.join('\n') + '\n';
}
