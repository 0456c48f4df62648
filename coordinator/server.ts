/**
 * The coordinator process: one HTTP server on one port serving the volunteer page (/), the
 * dashboard (/dashboard), Prometheus metrics (/metrics), /healthz, and the socket.io endpoint
 * that volunteers join. Wires registry, scheduler, recovery, metrics and the event log together.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import sirv from 'sirv';
import { capabilitiesSchema, statsSchema, MAX_SOCKET_BYTES } from '../shared/protocol/events.js';
import { parseOutMessage } from './relay-check.js';
import type { ServerToVolunteer, VolunteerToServer } from '../shared/protocol/events.js';
import { modelConfigOf, usesSwap, checkSettings, wireOf, type RunSettings } from '../shared/run-settings.js';
import { loadDataset } from '../trainer/corpus-file.js';
import { Registry, type Volunteer, type CoordinatorSocket } from './registry.js';
import { Scheduler } from './scheduler.js';
import { SwarmMetrics } from './metrics.js';
import { EventLog } from './events-log.js';
import { createLogger, type Logger } from './log.js';
import { Recovery, type RecoveryOptions } from './recovery.js';
import { RunStore } from './store.js';
import { Operator, newOperatorToken } from './operator.js';
import { decideResume, newRunId, type ResumeClaim } from './resume.js';
import { PruningSessionAdapter } from './session-adapter.js';
import { askStage, ASK_TIMEOUT_MS, okReply } from './ask-stage.js';

export interface CoordinatorOptions {
  settings: RunSettings;
  port: number;
  host: string;
  /** Built client (vite build output); pages are 503 until it exists. */
  clientDir: string;
  data?: string;
  tokenizer?: string;
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
  /** Validation failures before a tab is disconnected. */
  maxOffences: number;
  /** Messages per second a tab may send (token bucket with a burst of twice that). */
  rateLimit: number;
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
  outlierFactor: 50,
  recovery: {
    lrScale: 1.1,
    replicaEvery: 5,
    weighting: 'post-clip',
    checkpointEvery: 10,
    expectedFailureRate: 0.1,
    checkpointDir: new URL('../.data/checkpoints', import.meta.url).pathname,
  },
};

export class Coordinator {
  readonly metrics = new SwarmMetrics();
  readonly log: Logger;
  readonly events: EventLog;
  readonly registry = new Registry();
  readonly scheduler: Scheduler;
  readonly recovery: Recovery;
  readonly io: Server<VolunteerToServer, ServerToVolunteer>;
  /** Run history (runs, iterations, events) in SQLite. */
  readonly store: RunStore;
  /** Operator namespace, token-protected endpoints and dashboard controls. */
  readonly operator: Operator;
  private http = createServer((req, res) => this.handleHttp(req, res));
  private bySocket = new Map<string, Volunteer>();
  private graceTimers = new Map<string, NodeJS.Timeout>();
  private statics: ReturnType<typeof sirv> | null;
  /** The run's id (a resumed run keeps its id; a resume nobody answers starts a new one). */
  runId: string;
  /** Set while a restarted coordinator waits for the tabs of its previous run. */
  private resuming: { claims: ResumeClaim[]; recorded: number; timer: NodeJS.Timeout | null } | null = null;
  url = '';

  constructor(readonly opts: CoordinatorOptions) {
    checkSettings(opts.settings);
    this.log = createLogger({ level: opts.logLevel, silent: opts.silent });
    this.events = new EventLog(this.log);
    const config = modelConfigOf(opts.settings);
    this.store = new RunStore(opts.dataDir);
    this.runId = opts.resumeRun?.id ?? newRunId();
    if (!opts.resumeRun) this.startStoredRun(config);
    this.events.subscribe((e) => this.store.addEvent(this.runId, e));
    const { dataset } = loadDataset({ path: opts.data, tokenizer: opts.tokenizer, seqLen: config.seqLen });
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
      },
      this.registry,
      this.metrics,
      this.events,
      this.log,
      (v, reason, message) => this.reject(v, reason, message),
      (v, reason) => this.quarantineVolunteer(v, reason),
    );
    this.recovery = new Recovery(
      { ...opts.recovery, strategy: opts.settings.recovery, checkpointDir: join(opts.recovery.checkpointDir, this.runId) }, this.scheduler, this.registry, this.metrics, this.events, this.log);
    this.statics = existsSync(opts.clientDir) ? sirv(opts.clientDir, { single: false, etag: true }) : null;
    this.io = new Server<VolunteerToServer, ServerToVolunteer>(this.http, {
      maxHttpBufferSize: MAX_SOCKET_BYTES,
      pingInterval: Math.min(5000, Math.max(500, opts.heartbeatTimeoutMs / 2)),
      pingTimeout: opts.heartbeatTimeoutMs,
      connectionStateRecovery: { maxDisconnectionDuration: opts.graceMs, skipMiddlewares: true },
      adapter: PruningSessionAdapter as never,
      // Same-origin pages only (browsers send Origin); non-browser clients (tests, Node volunteers) send none.
      allowRequest: (req, cb) => cb(null, this.originAllowed(req)),
    });
    this.io.on('connection', (socket) => this.onConnection(socket));
    if (opts.resumeRun) {
      this.scheduler.iteration = opts.resumeRun.iteration;
      this.metrics.iteration.set(opts.resumeRun.iteration);
      this.scheduler.holdVacancies = true;
      for (const p of this.scheduler.vacant.values()) p.reason = 'resume';
      this.resuming = { claims: [], recorded: opts.resumeRun.iteration, timer: null };
    }
    this.operator = new Operator(this, opts.operatorToken || newOperatorToken());
    this.operator.attach(this.io);
  }

  private startStoredRun(config: unknown): void {
    const o = this.opts;
    this.store.startRun(this.runId, { settings: o.settings, config, evalEvery: o.evalEvery, evalBatches: o.evalBatches, maxIterations: o.maxIterations, data: o.data ?? null });
  }

  /** A tab of the previous run is back with its stage: keep it (no weights move). */
  private claimForResume(v: Volunteer): boolean {
    const r = v.caps.resume;
    if (!this.resuming || !r || r.runId !== this.runId || r.stage >= this.scheduler.nStages || !this.scheduler.vacant.has(r.stage)) return false;
    this.scheduler.vacant.delete(r.stage);
    v.stage = r.stage;
    this.resuming.claims.push({ volunteer: v, stage: r.stage, iteration: r.iteration });
    this.events.add('join', `${v.id} reclaimed stage ${r.stage} of run ${this.runId} (${r.iteration} steps applied)`, { volunteer: v.id, stage: r.stage, iteration: r.iteration });
    if (this.scheduler.vacant.size === 0) void this.finishResume();
    return true;
  }

  /** End of the resume window: continue from the tabs that came back, rebuild the rest. */
  private async finishResume(): Promise<void> {
    const state = this.resuming;
    if (!state) return;
    this.resuming = null;
    if (state.timer) clearTimeout(state.timer);
    const live = state.claims.filter((c) => this.registry.get(c.volunteer.id));
    const d = decideResume(this.scheduler.nStages, live);
    if (d.iteration === null) {
      const old = this.runId;
      this.runId = newRunId();
      this.startStoredRun(this.scheduler.opts.config);
      this.scheduler.iteration = 0;
      this.metrics.iteration.set(0);
      for (const p of this.scheduler.vacant.values()) p.reason = 'start';
      this.events.add('run', `no tab of run ${old} came back within ${this.opts.resumeWaitMs} ms: starting run ${this.runId} from the seed`);
    } else {
      for (const c of live) if (!d.kept.includes(c)) c.volunteer.stage = null; // stale step count: becomes a spare
      this.scheduler.iteration = d.iteration;
      this.metrics.iteration.set(d.iteration);
      for (const stage of d.rebuild) {
        this.scheduler.vacant.delete(stage);
        await this.recovery.onStageLost(stage);
      }
      this.events.add(
        'run',
        `resumed run ${this.runId} at iteration ${d.iteration}: stages ${d.kept.map((c) => c.stage).sort().join(', ') || 'none'} kept their weights` +
          (d.rebuild.length ? `; stages ${d.rebuild.join(', ')} rebuilt by ${this.opts.settings.recovery}` : ''),
        { iteration: d.iteration, kept: d.kept.map((c) => c.stage), rebuilt: d.rebuild },
      );
    }
    this.scheduler.holdVacancies = false;
    await this.scheduler.fillVacancies();
    this.scheduler.kick();
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
    const host = this.opts.host === '0.0.0.0' || this.opts.host === '::' ? 'localhost' : this.opts.host === '127.0.0.1' ? 'localhost' : this.opts.host;
    this.url = `http://${host}:${addr.port}`;
    // Tasks go through the socket's room: a tab back from a blip within the grace period gets
    // the packets it missed (connection-state recovery replays them).
    this.scheduler.emitTask = (v, meta, input, targets) => void this.io.to(v.socket.id).emit('task', meta, input, targets);
    this.scheduler.start();
    this.scheduler.onIteration = async (r) => {
      await this.recovery.afterIteration(r);
      this.operator.onIteration(r);
    };
    this.scheduler.onStageLost = (stage) => this.recovery.onStageLost(stage);
    this.scheduler.onUnresponsive = (v, why) => void this.drop(v, `unresponsive: ${why}`);
    if (this.resuming) {
      this.events.add('run', `resuming run ${this.runId} from iteration ${this.resuming.recorded}: waiting up to ${this.opts.resumeWaitMs} ms for its tabs`);
      this.resuming.timer = setTimeout(() => void this.finishResume(), this.opts.resumeWaitMs);
    }
    this.events.add('run', `coordinator ${this.runId} listening on ${this.url} (bound to ${this.opts.host})`, { settings: this.opts.settings as unknown as Record<string, unknown> });
    return this.url;
  }

  async close(): Promise<void> {
    for (const t of this.graceTimers.values()) clearTimeout(t);
    if (this.resuming?.timer) clearTimeout(this.resuming.timer);
    this.resuming = null;
    await this.scheduler.close();
    this.io.disconnectSockets(true);
    this.operator.close();
    await new Promise<void>((r) => this.io.close(() => r()));
    this.store.close();
  }

  private async handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end('method not allowed\n');
      return;
    }
    if (await this.operator.handleHttp(req, res, url)) return;
    if (url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, runId: this.runId, ...this.scheduler.status() }));
      return;
    }
    if (url.pathname === '/metrics') {
      res.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(await this.metrics.text());
      return;
    }
    if (!this.statics) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('client not built: run `npm run build` (npm start does it for you)\n');
      return;
    }
    if (url.pathname === '/dashboard' || url.pathname === '/dashboard/') req.url = '/dashboard.html' + url.search;
    this.statics(req, res, () => void res.writeHead(404).end('not found\n'));
  }

  /**
   * A tab whose numbers are poisoned (non-finite tensors, outlier gradient norms): its
   * contribution is dropped (the iteration is abandoned) and its stage rebuilt by recovery.
   */
  quarantineVolunteer(v: Volunteer, reason: string): void {
    if (!this.registry.get(v.id)) return;
    this.metrics.quarantined.inc();
    this.events.add('quarantine', `quarantined ${v.id} (stage ${v.stage ?? 'spare'}): ${reason}`, { volunteer: v.id, stage: v.stage, reason });
    v.socket.emit('rejected', { reason: 'quarantine', message: reason });
    void this.drop(v, `quarantined: ${reason}`);
  }

  reject(v: Volunteer, reason: string, message: string): void {
    if (reason === 'nonfinite') {
      this.metrics.rejected.inc({ reason });
      this.quarantineVolunteer(v, `non-finite values in a tensor: ${message}`);
      return;
    }
    v.offences++;
    this.metrics.rejected.inc({ reason });
    this.events.add('rejected', `rejected message from ${v.id} (${reason}): ${message}`, { volunteer: v.id, reason });
    v.socket.emit('rejected', { reason, message });
    if (v.offences >= this.opts.maxOffences) {
      this.events.add('leave', `disconnecting ${v.id} after ${v.offences} rejected message(s)`, { volunteer: v.id });
      void this.drop(v, 'misbehaved');
    }
  }

  /** Removes a volunteer for good; its stage (if any) goes to recovery. */
  async drop(v: Volunteer, why: string): Promise<void> {
    if (!this.registry.get(v.id)) return;
    this.registry.remove(v.id);
    this.bySocket.delete(v.socket.id);
    const t = this.graceTimers.get(v.id);
    if (t) clearTimeout(t);
    this.graceTimers.delete(v.id);
    v.socket.disconnect(true);
    this.events.add('leave', `${v.id} left (${why})${v.stage !== null ? `, stage ${v.stage} lost` : ''}`, { volunteer: v.id, stage: v.stage, why });
    const stage = v.stage;
    v.stage = null;
    this.scheduler.updateVolunteerGauges();
    if (stage !== null) await this.scheduler.stageLost(stage);
    else this.scheduler.broadcastStatus();
  }

  private onConnection(socket: CoordinatorSocket): void {
    const existing = this.bySocket.get(socket.id);
    if (socket.recovered && existing) {
      // A blip shorter than the grace period: same volunteer, same stage, no recovery.
      const t = this.graceTimers.get(existing.id);
      if (t) clearTimeout(t);
      this.graceTimers.delete(existing.id);
      existing.socket = socket;
      this.attach(existing);
      this.events.add('join', `${existing.id} reconnected within the grace period (stage ${existing.stage ?? 'spare'} kept)`, { volunteer: existing.id });
      return;
    }
    // Anything but hello before hello is counted and, repeated, disconnected.
    let early = 0;
    const beforeHello = (event: string) => {
      if (event === 'hello' || this.bySocket.has(socket.id)) return;
      this.metrics.rejected.inc({ reason: 'no_hello' });
      socket.emit('rejected', { reason: 'no_hello', message: `"${String(event).slice(0, 40)}" before hello` });
      if (++early >= this.opts.maxOffences) socket.disconnect(true);
    };
    socket.onAny(beforeHello);
    socket.once('hello', (caps, ack) => {
      socket.offAny(beforeHello);
      const parsed = capabilitiesSchema.safeParse(caps);
      if (!parsed.success || typeof ack !== 'function') {
        this.metrics.rejected.inc({ reason: 'schema' });
        socket.emit('rejected', { reason: 'schema', message: `bad hello: ${parsed.error?.issues[0]?.message ?? 'missing ack'}` });
        socket.disconnect(true);
        return;
      }
      const v = this.registry.add(socket, parsed.data);
      this.bySocket.set(socket.id, v);
      this.attach(v);
      ack({ ok: true });
      this.claimForResume(v);
      socket.emit('welcome', { volunteerId: v.id, runId: this.runId });
      this.events.add('join', `${v.id} joined (${v.caps.backend}, ${v.caps.throughputGflops.toFixed(2)} GFLOP/s)`, { volunteer: v.id, backend: v.caps.backend });
      void this.scheduler.fillVacancies().then(() => {
        if (v.stage === null && this.registry.get(v.id)) this.tellSpare(v);
        this.scheduler.kick();
      });
    });
    // A socket that never says hello is closed.
    const t = setTimeout(() => {
      if (!this.bySocket.has(socket.id)) socket.disconnect(true);
    }, 30_000);
    socket.on('disconnect', () => clearTimeout(t));
  }

  /** A tab that joined with no stage to fill is a hot spare: tell it, so its page can say so. */
  private tellSpare(v: Volunteer): void {
    const spare = { stage: null, config: this.scheduler.opts.config, lr: this.opts.settings.lr, wire: wireOf(this.opts.settings), weights: null, reason: 'spare' };
    askStage(v, 'assign', [spare], okReply, ASK_TIMEOUT_MS.assign).catch((e: Error) =>
      this.log.warn({ volunteer: v.id, err: e.message }, 'spare notice not acknowledged'),
    );
  }

  private attach(v: Volunteer): void {
    const socket = v.socket;
    // Flood control: a token bucket per tab; beyond it, messages are rejected before any handler.
    const bucket = new TokenBucket(this.opts.rateLimit, 2 * this.opts.rateLimit);
    socket.use((_packet, next) => {
      if (bucket.take()) return next();
      this.reject(v, 'rate_limit', `more than ${this.opts.rateLimit} messages/s`);
    });
    // No handler may throw into socket.io (that would take the process down): errors become rejects.
    const guard =
      <A extends unknown[]>(name: string, f: (...args: A) => void) =>
      (...args: A) => {
        try {
          f(...args);
        } catch (e) {
          this.log.error({ volunteer: v.id, event: name, err: (e as Error).message }, 'handler failed');
          this.reject(v, 'handler', `${name} failed: ${(e as Error).message}`);
        }
      };
    socket.on('out', guard('out', (meta, frame) => {
      if (this.registry.get(v.id) === undefined) return;
      const parsed = parseOutMessage(meta, frame);
      if (!parsed.ok) return this.reject(v, parsed.reason, parsed.message);
      if (v.stage === null) return this.reject(v, 'wrong_stage', 'a spare has no tasks');
      this.scheduler.handleOut(v, parsed.meta, parsed.frame);
    }));
    socket.on('stats', guard('stats', (s) => {
      const parsed = statsSchema.safeParse(s);
      if (!parsed.success) return this.reject(v, 'schema', `bad stats: ${parsed.error.issues[0]?.message}`);
      v.stats = parsed.data;
    }));
    socket.on('leave', () => void this.drop(v, 'left gracefully'));
    socket.on('hello', (_caps, ack) => {
      if (typeof ack === 'function') ack({ ok: true }); // already registered (reconnect)
    });
    socket.on('disconnect', (reason) => {
      if (!this.registry.get(v.id) || v.socket !== socket) return;
      if (reason === 'server namespace disconnect' || reason === 'client namespace disconnect') {
        void this.drop(v, reason === 'client namespace disconnect' ? 'closed the connection' : 'disconnected by the coordinator');
        return;
      }
      // Transport closed or heartbeat timed out: keep the stage for the grace period.
      this.graceTimers.set(
        v.id,
        setTimeout(() => void this.drop(v, `${reason}; not back within ${this.opts.graceMs} ms`), this.opts.graceMs),
      );
    });
    socket.onAny((event: string) => {
      if (!['out', 'stats', 'leave', 'hello'].includes(event)) this.reject(v, 'unknown_event', `unknown event "${event}"`);
    });
  }
}

/** A token bucket: `rate` tokens per second, at most `burst` saved up. */
export class TokenBucket {
  private tokens: number;
  private last = Date.now();
  constructor(private rate: number, private burst: number) {
    this.tokens = burst;
  }
  take(): boolean {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
