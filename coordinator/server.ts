/**
 * The coordinator: one HTTP server on one port serving the volunteer page (/), the dashboard
 * (/dashboard), Prometheus metrics (/metrics), /healthz, and the socket.io endpoint volunteers
 * join. This file only wires the parts together: registry (who is connected), stage table (who
 * serves which stage), placement, scheduler, recovery, connections, HTTP routes, resume window,
 * operator, metrics, store and event log.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { MAX_SOCKET_BYTES } from '../shared/protocol/events.js';
import type { RunStatus, ServerToVolunteer, VolunteerToServer } from '../shared/protocol/events.js';
import { modelConfigOf, usesSwap, checkSettings, wireOf, type RunSettings } from '../shared/run-settings.js';
import { loadDataset } from '../trainer/corpus-file.js';
import type { TokenDataset } from '../shared/data/dataset.js';
import type { Tokenizer } from '../shared/data/tokenizer.js';
import { Registry, type Volunteer } from './registry.js';
import { StageTable } from './stage-table.js';
import { TabSpeeds } from './tab-speed.js';
import { Placement } from './placement.js';
import { Scheduler } from './scheduler.js';
import { SwarmMetrics } from './metrics.js';
import { EventLog } from './events-log.js';
import { createLogger, type Logger } from './log.js';
import { Recovery, type RecoveryOptions } from './recovery.js';
import { StagePuller } from './stage-puller.js';
import { askStage, ASK_TIMEOUT_MS, okReply, transferTimeoutMs } from './ask-stage.js';
import { ReplicaSync } from './replica-sync.js';
import { RunStore } from './store.js';
import { Operator, newOperatorToken } from './operator.js';
import { newRunId } from './resume.js';
import { ResumeWindow } from './resume-window.js';
import { PruningSessionAdapter } from './session-adapter.js';
import { VolunteerConnections, VOLUNTEERS_ROOM } from './volunteer-connections.js';
import { HttpRoutes } from './http-routes.js';
import { maxBundleBytes, maxMessageBytes } from './message-limits.js';
import { BundleTransfer } from './bundle-transfer.js';
import { createSecureServer, type TlsCredentials } from './tls.js';
import { clientAddress } from './client-address.js';
import { Contributions } from './contributions.js';
import { SharedSample } from './shared-sample.js';
import { useTokenizer } from './sampling.js';
import { handlePublicRoute } from './public-routes.js';
import { forwardPath, swapCounter } from '../shared/schedule/paths.js';
import { HostCheck } from './host-check.js';
import { CheckpointStore } from './checkpoint-store.js';
import { DEFAULT_MAX_IN_FLIGHT } from './in-flight-window.js';

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
  /** The run's tokenizer, for sampling (absent: byte). */
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
  /** Host names (name or name:port) served besides the bound address (`--public-host`). */
  publicHosts?: string[];
  /** Serve HTTPS with these (plain HTTP on the port is redirected); null = HTTP. */
  tls?: TlsCredentials | null;
  /** A reverse proxy is in front: client addresses come from X-Forwarded-For (client-address.ts). */
  trustProxy?: boolean;
  /** Seconds between shared model samples for the volunteer page (0 = never). */
  sampleEverySeconds: number;
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

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export class Coordinator {
  readonly metrics = new SwarmMetrics();
  readonly log: Logger;
  readonly events: EventLog;
  readonly registry = new Registry();
  /** Who serves which stage: the one owner of that state. */
  readonly stages: StageTable;
  readonly speeds = new TabSpeeds();
  readonly placement: Placement;
  readonly scheduler: Scheduler;
  readonly recovery: Recovery;
  readonly replicaSync: ReplicaSync;
  /** How bundles (weights, states, gradients) are pulled from tabs: in chunks. */
  readonly transfer: BundleTransfer;
  readonly connections: VolunteerConnections;
  readonly io: Server<VolunteerToServer, ServerToVolunteer>;
  /** Run history (runs, iterations, events) in SQLite. */
  readonly store: RunStore;
  /** Operator namespace, token-protected endpoints and dashboard controls. */
  readonly operator: Operator;
  readonly routes: HttpRoutes;
  private http: ReturnType<typeof createServer>;
  /** What each browser has given (public table: nicknames only). */
  readonly contributions = new Contributions();
  /** The volunteer page's shared "the model now writes…" sample. */
  readonly sharedSample: SharedSample;
  /** The run's id (a resumed run keeps its id; a resume nobody answers starts a new one). */
  runId: string;
  /** Set while a restarted coordinator waits for the tabs of its previous run. */
  private resume: ResumeWindow | null = null;
  url = '';

  constructor(readonly opts: CoordinatorOptions) {
    checkSettings(opts.settings);
    const handler = (req: IncomingMessage, res: ServerResponse) => this.routes.handle(req, res);
    this.http = opts.tls ? createSecureServer(opts.tls, handler) : createServer(handler);
    this.log = createLogger({ level: opts.logLevel, silent: opts.silent });
    this.events = new EventLog(this.log);
    const config = modelConfigOf(opts.settings);
    this.store = new RunStore(opts.dataDir, { metrics: this.metrics, log: this.log });
    this.runId = opts.resumeRun?.id ?? newRunId();
    if (!opts.resumeRun) this.startStoredRun(config);
    this.events.subscribe((e) => this.store.addEvent(this.runId, e));
    const dataset = opts.dataset ?? loadDataset({ path: opts.data, tokenizer: opts.tokenizer, seqLen: config.seqLen }).dataset;
    useTokenizer(opts.tokenizerImpl ?? null);
    this.stages = new StageTable(opts.settings.stages);
    this.transfer = new BundleTransfer(opts.transferChunkBytes, maxBundleBytes(config));
    this.placement = new Placement(
      { config, lr: opts.settings.lr, maxReplicas: opts.maxReplicas, rebalanceEvery: opts.rebalanceEvery, wire: wireOf(opts.settings) },
      {
        stages: this.stages,
        transfer: this.transfer,
        speeds: this.speeds,
        events: this.events,
        log: this.log,
        drop: (v, why) => this.connections.dropLater(v, why),
        announceGroup: (s) => this.connections.announceGroup(s),
        issueClaim: (v, stage) => this.issueClaim(v, stage),
      },
    );
    this.scheduler = new Scheduler(
      {
        settings: opts.settings,
        config,
        swap: usesSwap(opts.settings),
        dataset,
        evalEvery: opts.evalEvery,
        evalBatches: opts.evalBatches,
        maxIterations: opts.maxIterations,
        stepTimeoutMs: opts.stepTimeoutMs,
        taskTimeoutMs: opts.taskTimeoutMs,
        outlierFactor: opts.outlierFactor,
        maxInFlight: opts.maxInFlight,
      },
      {
        stages: this.stages,
        speeds: this.speeds,
        placement: this.placement,
        metrics: this.metrics,
        events: this.events,
        log: this.log,
        reject: (v, reason, message) => this.connections.reject(v, reason, message),
        quarantine: (v, reason) => this.connections.quarantine(v, reason),
        transfer: this.transfer,
      },
    );
    // A tab that does not answer a weight request in time is dropped (counted as silent).
    const unresponsive = (v: Volunteer, why: string) => {
      this.metrics.rejected.inc({ reason: 'silent' });
      this.connections.dropLater(v, `unresponsive: ${why}`);
    };
    const puller = new StagePuller({
      transfer: this.transfer,
      timeoutMs: opts.pullTimeoutMs,
      replicas: (stage) => this.stages.replicas(stage),
      reject: (v, reason, message) => this.connections.reject(v, reason, message),
      unresponsive,
    });
    // Loads a state into a tab that already serves `stage` (a rollback, a re-sync): the same assignment again.
    const reload = async (v: Volunteer, stage: number, state: Uint8Array | null, reason: string) => {
      const assignment = { stage, config, lr: opts.settings.lr, weights: state, reason, wire: wireOf(opts.settings) };
      await askStage(v, 'assign', [assignment], okReply, transferTimeoutMs(ASK_TIMEOUT_MS.state, state?.byteLength ?? 0));
    };
    this.recovery = new Recovery(
      { ...opts.recovery, strategy: opts.settings.recovery },
      {
        scheduler: this.scheduler,
        stages: this.stages,
        puller,
        reload,
        waiting: () => this.placement.waitingCount(),
        metrics: this.metrics,
        events: this.events,
        log: this.log,
        checkpoints: new CheckpointStore({ store: this.store, dir: opts.recovery.checkpointDir, run: () => this.runId, log: this.log }),
      },
    );
    this.replicaSync = new ReplicaSync(opts.replicaSyncEvery, {
      config,
      nStages: opts.settings.stages,
      replicas: (stage) => this.stages.replicas(stage),
      puller,
      reload,
      unresponsive,
      reject: (v, reason, message) => this.connections.reject(v, reason, message),
      announceGroup: (stage) => this.connections.announceGroup(stage),
      metrics: this.metrics,
      events: this.events,
      log: this.log,
    });
    this.routes = new HttpRoutes({
      clientDir: opts.clientDir,
      operator: (req, res, url) => this.operator.handleHttp(req, res, url),
      health: () => ({ ok: true, runId: this.runId, ...this.scheduler.status() }),
      metrics: async () => ({ contentType: this.metrics.registry.contentType, text: await this.metrics.text() }),
      hosts: new HostCheck(opts.host, opts.publicHosts),
      rejected: (reason) => this.metrics.httpRejected.inc({ reason }),
      publicRoute: (url, res) => this.publicRoute(url, res),
      log: this.log,
    });
    this.routes.attach(this.http);
    this.connections = new VolunteerConnections(
      { config, graceMs: opts.graceMs, maxOffences: opts.maxOffences, rateLimit: opts.rateLimit, connectionRate: opts.connectionRate },
      {
        registry: this.registry,
        transfer: this.transfer,
        stages: this.stages,
        placement: this.placement,
        scheduler: this.scheduler,
        metrics: this.metrics,
        events: this.events,
        log: this.log,
        runId: () => this.runId,
        claimForResume: (v) => this.resume?.claim(v) ?? false,
        onHandoff: (stage, v, bytes) => this.recovery.noteHandoff(stage, v, bytes),
        addressOf: (socket) => clientAddress(socket.request, opts.trustProxy === true),
        credit: (v, meta) => this.credit(v, meta),
        setNickname: (id, nickname) => this.contributions.setNickname(id, nickname),
        forget: (v) => this.revokeClaim(v),
      },
    );
    // Who serves which stage changed: every page hears the new status (e.g. "3 more needed"); the
    // broadcast updates the gauges too (see listen()).
    this.stages.onChange(() => this.scheduler.broadcastStatus());
    this.io = new Server<VolunteerToServer, ServerToVolunteer>(this.http, {
      // The largest legitimate message of this run plus slack, not a fixed 64 MiB.
      maxHttpBufferSize: Math.min(MAX_SOCKET_BYTES, maxMessageBytes(config, opts.settings.batch, opts.transferChunkBytes)),
      pingInterval: Math.min(5000, Math.max(500, opts.heartbeatTimeoutMs / 2)),
      pingTimeout: opts.heartbeatTimeoutMs,
      connectionStateRecovery: { maxDisconnectionDuration: opts.graceMs, skipMiddlewares: true },
      adapter: PruningSessionAdapter as never,
      // Same-origin pages only (browsers send Origin); non-browser clients (tests, Node volunteers) send none.
      allowRequest: (req, cb) => cb(null, this.routes.hostAllowed(req) && this.originAllowed(req)),
    });
    this.io.on('connection', (socket) => this.connections.onConnection(socket));
    if (opts.resumeRun) {
      this.resume = new ResumeWindow(opts.resumeRun.iteration, opts.resumeWaitMs, {
        stages: this.stages,
        placement: this.placement,
        events: this.events,
        runId: () => this.runId,
        verifyClaim: (v, stage, token) => this.verifyClaim(v, stage, token),
        isConnected: (v) => this.registry.has(v),
        setIteration: (it) => {
          this.scheduler.iteration = it;
          this.metrics.iteration.set(it);
        },
        startNewRun: () => {
          this.runId = newRunId();
          this.startStoredRun(this.scheduler.opts.config);
          return this.runId;
        },
        rebuild: (stage) => this.recovery.onStageLost(stage),
        restoreWithoutTabs: () => this.recovery.resumeWithoutTabs(),
        iteration: () => this.scheduler.iteration,
        strategy: () => this.opts.settings.recovery,
        announceGroup: (s) => this.connections.announceGroup(s),
        kick: () => this.scheduler.kick(),
      });
    }
    this.sharedSample = new SharedSample(this.scheduler, this.stages, this.log, opts.sampleEverySeconds * 1000);
    this.operator = new Operator(this, opts.operatorToken || newOperatorToken());
    this.operator.attach(this.io);
  }

  private startStoredRun(config: unknown): void {
    const o = this.opts;
    this.store.startRun(this.runId, { settings: o.settings, config, evalEvery: o.evalEvery, evalBatches: o.evalBatches, maxIterations: o.maxIterations, data: o.data ?? null });
  }

  /** The hash of each tab's current assignment secret (the store keeps only hashes). */
  private claims = new Map<Volunteer, string>();

  private issueClaim(v: Volunteer, stage: number): string {
    this.revokeClaim(v);
    const token = randomBytes(24).toString('base64url');
    const hash = sha256(token);
    this.store.setClaim(this.runId, hash, stage);
    this.claims.set(v, hash);
    return token;
  }

  private verifyClaim(v: Volunteer, stage: number, token: string): boolean {
    const hash = sha256(token);
    if (!this.store.claimMatches(this.runId, stage, hash)) return false;
    this.claims.set(v, hash);
    return true;
  }

  private revokeClaim(v: Volunteer): void {
    const hash = this.claims.get(v);
    if (hash === undefined) return;
    this.claims.delete(v);
    this.store.removeClaim(this.runId, hash);
  }

  private updateStageGauges(): void {
    const { metrics, stages } = this;
    metrics.volunteers.set({ state: 'active' }, stages.activeCount());
    metrics.volunteers.set({ state: 'spare' }, this.placement.waitingCount());
    metrics.stageBackend.reset();
    for (let s = 0; s < stages.nStages; s++) {
      metrics.stageReplicas.set({ stage: String(s) }, stages.size(s));
      for (const v of stages.replicas(s)) metrics.stageBackend.set({ stage: String(s), backend: v.caps.backend }, 1);
    }
  }

  get operatorToken(): string {
    return this.operator.token;
  }

  private originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (!origin) return true;
    try {
      return new URL(origin).host === req.headers.host;
    } catch {
      return false;
    }
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.opts.port, this.opts.host, () => resolve());
    });
    const addr = this.http.address() as AddressInfo;
    this.routes.bound(addr.port);
    const host = this.opts.host === '0.0.0.0' || this.opts.host === '::' ? 'localhost' : this.opts.host === '127.0.0.1' ? 'localhost' : this.opts.host;
    this.url = `${this.opts.tls ? 'https' : 'http'}://${host}:${addr.port}`;
    // Tasks go through the socket's room: a tab back from a blip within the grace period gets
    // the packets it missed (connection-state recovery replays them).
    this.scheduler.emitTask = (v, meta, input, targets) => void this.io.to(v.socket.id).emit('task', meta, input, targets);
    // One broadcast per change, encoded once, instead of a send per tab.
    this.scheduler.broadcast = (s: RunStatus) => {
      this.updateStageGauges();
      this.io.to(VOLUNTEERS_ROOM).emit('run_status', s);
    };
    this.scheduler.broadcastAbandon = (iteration) => this.io.to(VOLUNTEERS_ROOM).emit('abandon', { iteration });
    this.scheduler.onIteration = async (r) => {
      await this.recovery.afterIteration(r);
      await this.replicaSync.afterIteration(r.iteration);
      this.operator.onIteration(r);
    };
    this.scheduler.onStageLost = (stage, opts) => this.recovery.onStageLost(stage, opts);
    this.scheduler.onReplicaLost = (stage, v, rerun) => this.recovery.noteReplicaRung(stage, v, rerun);
    this.scheduler.onUnresponsive = (v, why) => this.connections.dropLater(v, `unresponsive: ${why}`);
    this.scheduler.start();
    this.sharedSample.start();
    this.resume?.start();
    this.events.add('run', `coordinator ${this.runId} listening on ${this.url} (bound to ${this.opts.host})`, { settings: this.opts.settings as unknown as Record<string, unknown> });
    return this.url;
  }

  async close(): Promise<void> {
    this.sharedSample.stop();
    this.connections.close();
    this.resume?.cancel();
    await this.scheduler.close();
    this.io.disconnectSockets(true);
    this.operator.close();
    await new Promise<void>((r) => this.io.close(() => r()));
    this.store.close();
  }

  /** The volunteer page's public routes (public-routes.ts). */
  publicRoute(url: URL, res: ServerResponse): boolean {
    return handlePublicRoute(url, res, {
      status: () => this.scheduler.status(),
      volunteers: () => ({ active: this.stages.activeCount(), spares: this.placement.waitingCount() }),
      contributions: this.contributions,
      sample: () => this.sharedSample.latest,
      sampleEverySeconds: this.opts.sampleEverySeconds,
    });
  }

  /** Training work of a tab, credited to its browser (contributions.ts). */
  private credit(v: Volunteer, meta: { dir: string; computeMs: number; mb: number; hop: number; iteration: number }): void {
    const id = v.caps.browserId;
    if (!id || meta.dir === 'E') return;
    const { settings, config, swap } = this.scheduler.opts;
    const tokensPerMicrobatch = settings.batch * config.seqLen;
    // A microbatch counts once per stage it passes: on the hop that ran that stage's blocks.
    const path = forwardPath(swapCounter(meta.iteration, settings.microbatches, meta.mb), this.scheduler.nStages, swap);
    const forward = meta.dir === 'F' && path[meta.hop]?.segment.blocks === true;
    this.contributions.record(id, forward ? tokensPerMicrobatch : 0, meta.computeMs, forward ? 1 : 0);
  }

  /** Removes a volunteer for good; its stage goes down the recovery ladder. */
  drop(v: Volunteer, why: string): Promise<void> {
    return this.connections.drop(v, why);
  }
}
