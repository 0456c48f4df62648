/**
 * The coordinator's options (every flag maps onto one: cli/flags.ts) and their embedded defaults.
 */
import type { RunSettings } from '../shared/run-settings.js';
import type { TokenDataset } from '../shared/data/dataset.js';
import type { Tokenizer } from '../shared/data/tokenizer.js';
import type { RecoveryOptions } from './recovery/recovery.js';
import type { TlsCredentials } from './gateway/tls.js';
import { DEFAULT_MAX_IN_FLIGHT } from './training/in-flight-window.js';
import type { SchedulerKind } from '../shared/schedule/skip-request.js';
import type { P2pOptions } from './gateway/p2p-signalling.js';

export interface CoordinatorOptions {
  settings: RunSettings;
  port: number;
  host: string;
  /** Built client (vite build output); pages are 503 until it exists. */
  clientDir: string;
  data?: string;
  tokenizer?: string;
  /** A dataset prepared before the server starts (trainer/corpus/run-data.ts); absent: `data` read whole, byte tokenizer. */
  dataset?: TokenDataset;
  /** The run's tokenizer, for sampling and the export (absent: byte). */
  tokenizerImpl?: Tokenizer;
  evalEvery: number;
  evalBatches: number;
  maxIterations: number;
  /** A disconnected tab keeps its stage this long (socket.io connection-state recovery). */
  graceMs: number;
  /** socket.io heartbeat: a tab that stops answering pings for this long is lost. */
  heartbeatTimeoutMs: number;
  stepTimeoutMs: number;
  /** A tab that leaves a task unanswered this long is dropped as lost. */
  taskTimeoutMs: number;
  /** A stage that waits for a volunteer this long raises an alert (event, log, metric, status). */
  vacancyAlertMs: number;
  /** Uploads from tabs (weights, states, gradients) travel in chunks of at most this many bytes (bundle-transfer.ts). */
  transferChunkBytes: number;
  /** A tab asked for a stage's weights (or full state) that does not answer this long is dropped (default: ask-stage.ts). */
  pullTimeoutMs?: { weights: number; state: number };
  /** Validation failures before a tab is disconnected. */
  maxOffences: number;
  /** Messages per second a tab may send (token bucket with a burst of twice that). */
  rateLimit: number;
  /** New connections per second one client address may open (bursts of twice that). */
  connectionRate: number;
  /** A gradient norm this many times the stage's recent median gets the tab quarantined. */
  outlierFactor: number;
  recovery: Omit<RecoveryOptions, 'strategy'>;
  logLevel?: string;
  silent?: boolean;
  /** Continue this stored run (see resume.ts): its id and last completed iteration. */
  resumeRun?: { id: string; iteration: number } | null;
  /** How long a resumed run waits for its tabs to come back. */
  resumeWaitMs: number;
  /** Run history (SQLite) lives here; unset = in memory only (main.ts defaults to .data/). */
  dataDir?: string | null;
  /** Operator token for the dashboard and /api/operator/*; unset = a random one per start. */
  operatorToken?: string;
  /** Most tabs per stage (Infinity = no cap); more tabs wait as spares. */
  maxReplicas: number;
  /** Consider moving one tab to the bottleneck stage every this many iterations (0 = never). */
  rebalanceEvery: number;
  /** Compare the replicas of every stage every this many iterations and re-sync any that drifted (0 = never). */
  replicaSyncEvery: number;
  /** Microbatches in flight per replica of the narrowest stage, at most, when overlap widens the window (in-flight-window.ts). */
  maxInFlight: number;
  /** SkipPipe: each training microbatch skips about this fraction of the stages (0 = full paths; docs/skippipe.md). */
  skipRatio: number;
  /** How skip paths are chosen: collision-aware over measured stage times, or random (the baseline). */
  skipSchedule: SchedulerKind;
  /** Host names (name or name:port) served besides the bound address (`--public-host`). */
  publicHosts?: string[];
  /** Serve HTTPS with these (plain HTTP on the port is redirected); null = HTTP. */
  tls?: TlsCredentials | null;
  /** A reverse proxy is in front: client addresses come from X-Forwarded-For (client-address.ts). */
  trustProxy?: boolean;
  /** Seconds between shared model samples for the volunteer page (0 = never). */
  sampleEverySeconds: number;
  /** `--transport`, `--ice-server`, `--turn-secret`, `--turn-ttl` (docs/p2p.md); absent = relay. */
  p2p?: Partial<P2pOptions>;
}

export const DEFAULT_COORDINATOR: Omit<CoordinatorOptions, 'settings'> = {
  port: 8080,
  host: '127.0.0.1',
  clientDir: new URL('../dist/client', import.meta.url).pathname,
  evalEvery: 10,
  evalBatches: 2,
  maxIterations: 0,
  graceMs: 2000,
  heartbeatTimeoutMs: 20000,
  stepTimeoutMs: 120000,
  taskTimeoutMs: 120000,
  vacancyAlertMs: 300000,
  resumeWaitMs: 15000,
  maxOffences: 3,
  rateLimit: 400,
  connectionRate: 20,
  sampleEverySeconds: 180,
  outlierFactor: 50,
  maxReplicas: Infinity,
  rebalanceEvery: 5,
  replicaSyncEvery: 10,
  transferChunkBytes: 4 * 1024 * 1024,
  maxInFlight: DEFAULT_MAX_IN_FLIGHT,
  skipRatio: 0,
  skipSchedule: 'collision',
  recovery: {
    lrScale: 1.1,
    replicaEvery: 5,
    weighting: 'post-clip',
    edge: 'reinit',
    checkpointEvery: 10,
    expectedFailureRate: 0.1,
    checkpointDir: new URL('../.data/checkpoints', import.meta.url).pathname,
  },
};
