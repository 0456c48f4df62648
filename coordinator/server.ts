/**
 * The coordinator process: one HTTP server on one port serving the volunteer page (/), the
 * dashboard (/dashboard), Prometheus metrics (/metrics), /healthz, and the socket.io endpoint
 * that volunteers join. Wires registry, scheduler, recovery, metrics and the event log together.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import sirv from 'sirv';
import { capabilitiesSchema, outMetaSchema, statsSchema, MAX_SOCKET_BYTES } from '../shared/protocol/events.js';
import type { ServerToVolunteer, VolunteerToServer } from '../shared/protocol/events.js';
import { modelConfigOf, usesSwap, checkSettings, type RunSettings } from '../shared/run-settings.js';
import { loadDataset } from '../shared/data/corpus-node.js';
import { Registry, type Volunteer, type CoordinatorSocket } from './registry.js';
import { Scheduler } from './scheduler.js';
import { SwarmMetrics } from './metrics.js';
import { EventLog } from './events-log.js';
import { createLogger, type Logger } from './log.js';
import { Recovery, SWARM_STRATEGIES, type RecoveryOptions } from './recovery.js';
import { ConfigError } from '../shared/model/config.js';

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
  /** Validation failures before a tab is disconnected. */
  maxOffences: number;
  recovery: Omit<RecoveryOptions, 'strategy'>;
  logLevel?: string;
  silent?: boolean;
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
  maxOffences: 1,
  recovery: { lrScale: 1.1, replicaEvery: 5, weighting: 'post-clip' },
};

export class Coordinator {
  readonly metrics = new SwarmMetrics();
  readonly log: Logger;
  readonly events: EventLog;
  readonly registry = new Registry();
  readonly scheduler: Scheduler;
  readonly recovery: Recovery;
  readonly io: Server<VolunteerToServer, ServerToVolunteer>;
  private http = createServer((req, res) => this.handleHttp(req, res));
  private bySocket = new Map<string, Volunteer>();
  private graceTimers = new Map<string, NodeJS.Timeout>();
  private statics: ReturnType<typeof sirv> | null;
  readonly runId = Math.random().toString(36).slice(2, 10);
  url = '';

  constructor(readonly opts: CoordinatorOptions) {
    checkSettings(opts.settings);
    if (!SWARM_STRATEGIES.includes(opts.settings.recovery)) {
      throw new ConfigError(
        `--recovery ${opts.settings.recovery} is not available in the swarm yet (it exists as a local baseline); choose one of: ${SWARM_STRATEGIES.join(', ')}`,
      );
    }
    this.log = createLogger({ level: opts.logLevel, silent: opts.silent });
    this.events = new EventLog(this.log);
    const config = modelConfigOf(opts.settings);
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
      },
      this.registry,
      this.metrics,
      this.events,
      this.log,
      (v, reason, message) => this.reject(v, reason, message),
    );
    this.recovery = new Recovery({ ...opts.recovery, strategy: opts.settings.recovery }, this.scheduler, this.registry, this.metrics, this.events, this.log);
    this.statics = existsSync(opts.clientDir) ? sirv(opts.clientDir, { single: false, etag: true }) : null;
    this.io = new Server<VolunteerToServer, ServerToVolunteer>(this.http, {
      maxHttpBufferSize: MAX_SOCKET_BYTES,
      pingInterval: Math.min(5000, Math.max(500, opts.heartbeatTimeoutMs / 2)),
      pingTimeout: opts.heartbeatTimeoutMs,
      connectionStateRecovery: { maxDisconnectionDuration: opts.graceMs, skipMiddlewares: true },
      // Same-origin pages only (browsers send Origin); non-browser clients (tests, Node volunteers) send none.
      allowRequest: (req, cb) => cb(null, this.originAllowed(req)),
    });
    this.io.on('connection', (socket) => this.onConnection(socket));
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
    this.scheduler.onIteration = (r) => this.recovery.afterIteration(r);
    this.scheduler.onStageLost = (stage, v) => this.recovery.onStageLost(stage, v);
    this.events.add('run', `coordinator ${this.runId} listening on ${this.url} (bound to ${this.opts.host})`, { settings: this.opts.settings as unknown as Record<string, unknown> });
    return this.url;
  }

  async close(): Promise<void> {
    for (const t of this.graceTimers.values()) clearTimeout(t);
    await this.scheduler.close();
    this.io.disconnectSockets(true);
    await new Promise<void>((r) => this.io.close(() => r()));
  }

  private async handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end('method not allowed\n');
      return;
    }
    if (url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, ...this.scheduler.status() }));
      return;
    }
    if (url.pathname === '/metrics') {
      res.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(await this.metrics.text());
      return;
    }
    if (url.pathname === '/api/state') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(this.snapshot()));
      return;
    }
    if (!this.statics) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('client not built: run `npm run build` (npm start does it for you)\n');
      return;
    }
    if (url.pathname === '/dashboard' || url.pathname === '/dashboard/') req.url = '/dashboard.html' + url.search;
    this.statics(req, res, () => void res.writeHead(404).end('not found\n'));
  }

  /** Live swarm state for the dashboard placeholder and tests. */
  snapshot() {
    return {
      runId: this.runId,
      status: this.scheduler.status(),
      settings: this.opts.settings,
      volunteers: this.registry.all().map((v) => ({
        id: v.id,
        stage: v.stage,
        backend: v.caps.backend,
        adapter: v.caps.adapter,
        throughputGflops: v.caps.throughputGflops,
        stepMs: v.lastStepMs,
        tokensPerSec: v.stats?.tokensPerSec ?? null,
        connectedSeconds: (Date.now() - v.joinedAt) / 1000,
      })),
      vacant: [...this.scheduler.vacant.keys()],
      history: this.scheduler.history.slice(-500),
      events: this.events.list().slice(-200),
    };
  }

  reject(v: Volunteer, reason: string, message: string): void {
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
    if (stage !== null) await this.scheduler.stageLost(stage, v);
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
    socket.once('hello', (caps, ack) => {
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
      socket.emit('welcome', { volunteerId: v.id, runId: this.runId });
      this.events.add('join', `${v.id} joined (${v.caps.backend}, ${v.caps.throughputGflops.toFixed(2)} GFLOP/s)`, { volunteer: v.id, backend: v.caps.backend });
      void this.scheduler.fillVacancies().then(() => this.scheduler.kick());
    });
    // A socket that never says hello is closed.
    const t = setTimeout(() => {
      if (!this.bySocket.has(socket.id)) socket.disconnect(true);
    }, 30_000);
    socket.on('disconnect', () => clearTimeout(t));
  }

  private attach(v: Volunteer): void {
    const socket = v.socket;
    socket.on('out', (meta, frame) => {
      if (this.registry.get(v.id) === undefined) return;
      const parsed = outMetaSchema.safeParse(meta);
      if (!parsed.success) return this.reject(v, 'schema', `bad result metadata: ${parsed.error.issues[0]?.message}`);
      if (frame !== null && !(frame instanceof Uint8Array)) return this.reject(v, 'schema', 'tensor payload must be binary');
      if (v.stage === null) return this.reject(v, 'wrong_stage', 'a spare has no tasks');
      this.scheduler.handleOut(v, parsed.data, frame);
    });
    socket.on('stats', (s) => {
      const parsed = statsSchema.safeParse(s);
      if (!parsed.success) return this.reject(v, 'schema', `bad stats: ${parsed.error.issues[0]?.message}`);
      v.stats = parsed.data;
    });
    socket.on('leave', () => void this.drop(v, 'left gracefully'));
    socket.on('hello', (_caps, ack) => {
      if (typeof ack === 'function') ack({ ok: true }); // already registered (reconnect)
    });
    socket.onAnyOutgoing(() => {});
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
