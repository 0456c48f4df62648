/**
 * The operator's side of the coordinator: the `/operator` socket.io namespace the dashboard
 * joins with the operator token, the token-protected HTTP endpoints (runs, export), live pushes
 * (swarm snapshot, iterations, events), persistence of iterations, and the controls: pause,
 * recovery strategy, injected failures, churn, sampling and model export.
 *
 * Volunteers connect to the default namespace, which has none of these events (and rejects
 * unknown ones); the operator namespace's middleware refuses any handshake without the token.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Namespace, Server, Socket } from 'socket.io';
import type { z } from 'zod';
import {
  churnSchema,
  injectSchema,
  pauseSchema,
  runIdSchema,
  sampleSchema,
  strategySchema,
  type Ack,
  type ChurnConfig,
  type EventRow,
  type IterationRow,
  type OperatorInit,
  type OperatorToServer,
  type SampleResult,
  type ServerToOperator,
  type StageSlot,
  type SwarmSnapshot,
  type TabInfo,
} from '../../shared/protocol/operator.js';
import { mulberry32 } from '../../shared/model/rng.js';
import { perIterationProbability } from '../../shared/recovery/failure-model.js';
import { RECOVERY_STRATEGIES, type RecoveryStrategy } from '../../shared/run-settings.js';
import { stageParamSpecs } from '../../shared/model/params.js';
import { validateWeights, type NamedWeights } from '../../shared/model/stage.js';
import { decodeWeights } from '../../shared/protocol/index.js';
import type { Coordinator } from '../server.js';
import type { IterationRecord } from '../training/scheduler.js';
import type { Volunteer } from '../tabs/registry.js';
import type { TabSpeeds } from '../tabs/tab-speed.js';
import { assembleModelFile } from './model-file.js';
import { AskError, ASK_TIMEOUT_MS } from '../tabs/ask-stage.js';
import { generate, swarmLogits, tokenizer } from './sampling.js';
import { clientAddress } from '../gateway/client-address.js';
import { AuthThrottle } from './auth-throttle.js';

type OperatorSocket = Socket<OperatorToServer, ServerToOperator>;

/** A fresh random operator token (192 bits, URL-safe). */
export function newOperatorToken(): string {
  return randomBytes(24).toString('base64url');
}

/** Constant-time comparison (hashing first makes the lengths equal). */
export function tokenMatches(given: unknown, expected: string): boolean {
  if (typeof given !== 'string' || given.length === 0 || given.length > 1024) return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * The token of an HTTP request: `Authorization: Bearer <token>` only. Never a query parameter:
 * URLs end up in logs, browser history and Referer headers.
 */
export function requestToken(req: IncomingMessage): string | null {
  const h = req.headers.authorization;
  if (h && /^Bearer\s+/i.test(h)) return h.replace(/^Bearer\s+/i, '').trim();
  return null;
}

/** How long a signed export link (`/api/operator/export?ticket=`) stays valid; it works once. */
export const EXPORT_TICKET_MS = 60_000;
const MAX_TICKETS = 32;

export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/**
 * `tokensPerIteration`: every microbatch passes through every stage, so a stage's throughput is
 * the iteration's tokens over its own compute time (the tab's own report only counts tokens at
 * the embedding, i.e. stage 0).
 */
function tabInfo(v: Volunteer, now: number, tokensPerIteration: number, speeds: TabSpeeds, groupDone: number): TabInfo {
  const a = v.caps.adapter;
  return {
    id: v.id,
    backend: v.caps.backend,
    adapter: a ? [a.vendor, a.architecture].filter(Boolean).join(' ') || a.description || null : null,
    throughputGflops: v.caps.throughputGflops,
    stepMs: v.lastStepMs,
    tokensPerSec: v.stage !== null && v.lastStepMs ? (tokensPerIteration * 1000) / v.lastStepMs : null,
    joinedAt: v.joinedAt,
    connectedSeconds: (now - v.joinedAt) / 1000,
    taskMs: speeds.taskMs(v),
    share: v.stage !== null && groupDone > 0 ? speeds.done(v) / groupDone : null,
  };
}

export interface ExportedModel {
  bytes: Uint8Array;
  filename: string;
  iteration: number;
  /** Validation loss the swarm measured on exactly these weights (null if not measured). */
  valLoss: number | null;
}

export class Operator {
  private nsp: Namespace<OperatorToServer, ServerToOperator> | null = null;
  private pausedByOperator = false;
  private holds = 0;
  private churn: ChurnConfig = { mode: 'off' };
  private churnRand: () => number = () => 1;
  private churnFailures = 0;
  private sampling = false;
  private exporting = false;
  private lastSwarmKey = '';
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private closed = false;
  /** Per-address throttle on wrong operator tokens. */
  readonly throttle = new AuthThrottle();
  /** Single-use export links: ticket -> expiry (epoch ms). */
  private tickets = new Map<string, number>();

  constructor(private coord: Coordinator, readonly token: string) {}

  /** Checks a presented token for `address`: 'ok', 'missing', 'wrong' or 'throttled' (counted). */
  authenticate(given: unknown, address: string): 'ok' | 'missing' | 'wrong' | 'throttled' {
    const result = !this.throttle.allowed(address)
      ? 'throttled'
      : typeof given !== 'string' || given === ''
        ? 'missing'
        : tokenMatches(given, this.token)
          ? 'ok'
          : 'wrong';
    if (result === 'wrong') this.throttle.failed(address);
    if (result !== 'ok') this.coord.metrics.authFailures.inc({ result });
    if (result === 'wrong' || result === 'throttled') this.coord.log.warn({ address, result }, 'operator access refused');
    return result;
  }

  /** A fresh single-use export ticket. */
  private newTicket(): string {
    const now = Date.now();
    for (const [t, exp] of this.tickets) if (exp <= now) this.tickets.delete(t);
    while (this.tickets.size >= MAX_TICKETS) this.tickets.delete(this.tickets.keys().next().value!);
    const t = randomBytes(24).toString('base64url');
    this.tickets.set(t, now + EXPORT_TICKET_MS);
    return t;
  }

  /** Consumes `ticket`; true when it was issued, unused and unexpired. */
  private useTicket(ticket: string): boolean {
    const exp = this.tickets.get(ticket);
    this.tickets.delete(ticket);
    return exp !== undefined && exp > Date.now();
  }

  /** Joins the socket.io server (namespace `/operator`) and the event log. */
  attach(io: Server): void {
    const nsp = io.of('/operator') as unknown as Namespace<OperatorToServer, ServerToOperator>;
    nsp.use((socket, next) => {
      const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
      const r = this.authenticate(token, clientAddress(socket.request, this.coord.opts.trustProxy === true));
      if (r === 'missing') return next(new Error('operator token required'));
      if (r === 'throttled') return next(new Error('too many wrong operator tokens from this address; try again later'));
      if (r === 'wrong') return next(new Error('invalid operator token'));
      next();
    });
    nsp.on('connection', (socket) => this.onConnection(socket));
    this.nsp = nsp;
    this.unsubscribe = this.coord.events.subscribe((e) => this.nsp?.emit('event', e as EventRow));
    // Snapshots are pushed when they change; the timer catches changes no event announces.
    this.timer = setInterval(() => this.pushSwarm(), 500);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.unsubscribe?.();
    this.nsp?.disconnectSockets(true);
  }

  // ---- state -------------------------------------------------------------------------------

  snapshot(): SwarmSnapshot {
    const { scheduler, recovery, speeds, placement } = this.coord;
    const table = this.coord.stages;
    const now = Date.now();
    const { settings, config } = scheduler.opts;
    const tokens = settings.microbatches * settings.batch * config.seqLen;
    const stages: StageSlot[] = [];
    for (let s = 0; s < scheduler.nStages; s++) {
      const group = table.replicas(s);
      const groupDone = group.reduce((n, v) => n + speeds.done(v), 0);
      const tabs = group.map((v) => tabInfo(v, now, tokens, speeds, groupDone));
      const pending = table.pendingFor(s);
      if (tabs.length) stages.push({ stage: s, state: 'training', tab: tabs[0]!, tabs, reason: null });
      else if (pending && !table.isRebuilding(s)) stages.push({ stage: s, state: 'waiting', tab: null, tabs, reason: pending.reason });
      else stages.push({ stage: s, state: 'rebuilding', tab: null, tabs, reason: null });
    }
    const tab = (v: Volunteer) => tabInfo(v, now, tokens, speeds, 0);
    return {
      runId: this.coord.runId,
      time: now,
      status: scheduler.status(),
      paused: this.pausedByOperator,
      strategy: recovery.strategy.name,
      strategies: RECOVERY_STRATEGIES,
      swap: scheduler.opts.swap,
      churn: { ...this.churn, failures: this.churnFailures },
      stages,
      spares: placement.spares().map(tab),
      sampling: this.sampling,
      exporting: this.exporting,
    };
  }

  private pushSwarm(force = false): void {
    const nsp = this.nsp;
    if (!nsp || this.closed || nsp.sockets.size === 0) return;
    const snap = this.snapshot();
    const key = JSON.stringify(snap, (k, v: unknown) => (k === 'time' || k === 'connectedSeconds' ? undefined : v));
    if (!force && key === this.lastSwarmKey) return;
    this.lastSwarmKey = key;
    nsp.emit('swarm', snap);
  }

  init(): OperatorInit {
    const { store, runId } = this.coord;
    return {
      runId,
      settings: store.getRun(runId)?.settings ?? {},
      swarm: this.snapshot(),
      iterations: store.iterations(runId), // the newest DASHBOARD_ITERATIONS / DASHBOARD_EVENTS rows
      events: store.events(runId),
      runs: store.listRuns({ liveId: runId }),
    };
  }

  /** After each completed iteration (after recovery's bookkeeping): persist, push, churn. */
  onIteration(r: IterationRecord): void {
    const row: IterationRow = {
      iteration: r.iteration,
      trainLoss: r.trainLoss,
      valLoss: r.valLoss,
      seconds: r.seconds,
      time: r.time,
      tokens: r.tokens,
      stages: Array.from({ length: this.coord.scheduler.nStages }, (_, s) => {
        const v = this.coord.stages.owner(s);
        return { stage: s, volunteer: v?.id ?? null, computeMs: v?.lastStepMs ?? null };
      }),
    };
    try {
      this.coord.store.addIteration(this.coord.runId, row);
    } catch (e) {
      this.coord.log.error({ err: (e as Error).message }, 'could not store iteration');
    }
    this.nsp?.emit('iteration', row);
    this.churnStep(r);
    this.pushSwarm();
  }

  /** Churn: each stage's tab fails independently with the per-iteration probability (seeded). */
  private churnStep(r: IterationRecord): void {
    const c = this.churn;
    if (c.mode === 'off') return;
    const p = c.mode === 'iteration' ? c.probability : perIterationProbability(c.rate, Math.max(r.seconds, 1e-3));
    for (let s = 0; s < this.coord.scheduler.nStages; s++) {
      const hit = this.churnRand() < p;
      const v = this.coord.stages.owner(s);
      if (!hit || !v) continue;
      this.churnFailures++;
      this.coord.events.add('run', `churn: failing stage ${s} (${v.id}) after iteration ${r.iteration} (p=${p.toPrecision(3)} per iteration)`, {
        operator: true,
        action: 'churn',
        stage: s,
        volunteer: v.id,
        probability: p,
      });
      void this.coord.drop(v, `churn: injected failure (p=${p.toPrecision(3)})`);
    }
  }

  private applyPause(): void {
    const paused = this.pausedByOperator || this.holds > 0;
    this.coord.scheduler.paused = paused;
    if (!paused) this.coord.scheduler.kick();
    this.pushSwarm();
  }

  setPaused(paused: boolean): void {
    if (paused === this.pausedByOperator) return;
    this.pausedByOperator = paused;
    this.coord.events.add('run', paused ? 'operator paused the run (after the current iteration)' : 'operator resumed the run', { operator: true, action: paused ? 'pause' : 'resume' });
    this.applyPause();
  }

  setStrategy(strategy: RecoveryStrategy): void {
    const before = this.coord.recovery.strategy.name;
    if (before === strategy) return;
    this.coord.recovery.setStrategy(strategy);
    this.coord.events.add('run', `operator switched the recovery strategy for the next failure: ${before} -> ${strategy}`, { operator: true, action: 'strategy', from: before, to: strategy });
    this.pushSwarm();
  }

  async injectFailure(stage: number): Promise<string> {
    if (stage >= this.coord.scheduler.nStages) throw new Error(`no stage ${stage} (the run has ${this.coord.scheduler.nStages})`);
    const v = this.coord.stages.owner(stage);
    if (!v) throw new Error(`stage ${stage} has no tab to fail right now`);
    this.coord.events.add('run', `operator injected a failure: stage ${stage} (${v.id})`, { operator: true, action: 'inject', stage, volunteer: v.id });
    await this.coord.drop(v, 'operator injected failure');
    return v.id;
  }

  setChurn(c: ChurnConfig): void {
    this.churn = c;
    this.churnRand = c.mode === 'off' ? () => 1 : mulberry32(c.seed);
    const what =
      c.mode === 'off'
        ? 'off'
        : c.mode === 'iteration'
          ? `each stage fails with probability ${c.probability} per iteration (seed ${c.seed})`
          : `each stage fails at ${(c.rate * 100).toFixed(1)}% per hour (seed ${c.seed})`;
    this.coord.events.add('run', `operator set churn: ${what}`, { operator: true, action: 'churn-config', ...c });
    this.pushSwarm();
  }

  async sample(req: z.infer<typeof sampleSchema>): Promise<SampleResult> {
    if (this.sampling) throw new Error('a sample is already being generated');
    this.sampling = true;
    this.pushSwarm();
    const t0 = Date.now();
    try {
      const { scheduler, stages } = this.coord;
      const config = scheduler.opts.config;
      const iteration = scheduler.iteration;
      const tokens = await generate(
        (ctx) => swarmLogits(stages, config, scheduler.nStages, ctx),
        tokenizer.encode(req.prompt),
        { length: req.length, temperature: req.temperature, seed: req.seed ?? 1, seqLen: config.seqLen, cancelled: () => this.closed },
      );
      return { prompt: req.prompt, text: tokenizer.decode(tokens), tokens, ms: Date.now() - t0, iteration };
    } finally {
      this.sampling = false;
      this.pushSwarm();
    }
  }

  /**
   * The trained model as one safetensors file. Holds the run at an iteration boundary, fetches
   * every stage's weights from its tab, optionally lets the swarm measure the validation loss of
   * exactly these weights, then releases the run.
   */
  async exportModel(opts: { validate?: boolean } = {}): Promise<ExportedModel> {
    if (this.exporting) throw new HttpError(409, 'an export is already running');
    const { scheduler, stages } = this.coord;
    this.exporting = true;
    this.holds++;
    this.applyPause();
    try {
      const deadline = Date.now() + this.coord.opts.stepTimeoutMs + ASK_TIMEOUT_MS.weights;
      while (scheduler.state === 'running') {
        if (Date.now() > deadline) throw new HttpError(503, 'the current iteration did not finish in time; try again');
        await new Promise((r) => setTimeout(r, 25));
      }
      const config = scheduler.opts.config;
      const owners = Array.from({ length: scheduler.nStages }, (_, s) => stages.owner(s));
      const missing = owners.findIndex((v) => !v);
      if (missing >= 0) throw new HttpError(409, `stage ${missing} has no volunteer right now (waiting or being rebuilt); export when every stage is served`);
      const weights: NamedWeights[] = [];
      for (const [s, v] of owners.entries()) {
        let r: Uint8Array;
        try {
          r = await this.coord.transfer.pull(v!, { event: 'get_weights', parts: 'all' }, ASK_TIMEOUT_MS.weights);
        } catch (e) {
          const timedOut = e instanceof AskError && (e.failure === 'timeout' || e.failure === 'disconnected');
          throw new HttpError(timedOut ? 503 : 502, `stage ${s} (${v!.id}) did not send its weights: ${(e as Error).message}`);
        }
        let w: NamedWeights;
        try {
          w = decodeWeights(r);
          validateWeights(stageParamSpecs(config, s), w);
        } catch (e) {
          throw new HttpError(502, `stage ${s} (${v!.id}) sent bad weights: ${(e as Error).message}`);
        }
        weights.push(w);
      }
      const iteration = scheduler.iteration;
      let valLoss: number | null = null;
      if (opts.validate && this.coord.opts.evalBatches > 0) {
        try {
          const v = await scheduler.validate();
          // Only if nothing changed hands meanwhile (a replaced stage holds other weights).
          if (owners.every((o, s) => stages.owner(s) === o) && scheduler.iteration === iteration) valLoss = v;
        } catch (e) {
          this.coord.log.warn({ err: (e as Error).message }, 'validation for the export failed');
        }
      }
      const bytes = assembleModelFile(config, weights, {
        run_id: this.coord.runId,
        iteration: String(iteration),
        settings: JSON.stringify(this.coord.opts.settings),
        created: new Date().toISOString(),
        ...(valLoss !== null ? { val_loss: String(valLoss), val_batches: String(this.coord.opts.evalBatches), val_batch_size: String(this.coord.opts.settings.batch) } : {}),
      });
      const filename = `swarm-${this.coord.runId}-it${iteration}.safetensors`;
      this.coord.events.add('run', `operator exported the model at iteration ${iteration} (${(bytes.byteLength / 1024).toFixed(1)} KiB${valLoss !== null ? `, validation loss ${valLoss.toFixed(4)}` : ''})`, {
        operator: true,
        action: 'export',
        iteration,
        bytes: bytes.byteLength,
        valLoss,
      });
      return { bytes, filename, iteration, valLoss };
    } finally {
      this.exporting = false;
      this.holds--;
      this.applyPause();
    }
  }

  // ---- socket.io ---------------------------------------------------------------------------

  private onConnection(socket: OperatorSocket): void {
    this.coord.log.info({ operator: socket.id }, 'operator dashboard connected');
    type AnyAck = (r: Ack<Record<string, unknown>>) => void;
    const handle = <S extends z.ZodType>(event: keyof OperatorToServer, schema: S | null, fn: (p: z.infer<S>) => Promise<Record<string, unknown>> | Record<string, unknown>) => {
      socket.on(event as never, ((...args: unknown[]) => {
        const ack = args[args.length - 1];
        if (typeof ack !== 'function') return;
        const reply = ack as AnyAck;
        let payload: unknown = undefined;
        if (schema) {
          const parsed = schema.safeParse(args[0]);
          if (!parsed.success) return reply({ ok: false, error: `bad ${event} request: ${parsed.error.issues[0]?.message ?? 'invalid'}` });
          payload = parsed.data;
        }
        Promise.resolve()
          .then(() => fn(payload as z.infer<S>))
          .then(
            (r) => reply({ ok: true, ...r }),
            (e: Error) => reply({ ok: false, error: e.message }),
          );
      }) as never);
    };
    handle('init', null, () => ({ init: this.init() }));
    handle('pause', pauseSchema, (p) => (this.setPaused(p.paused), {}));
    handle('set_strategy', strategySchema, (p) => (this.setStrategy(p.strategy), {}));
    handle('inject_failure', injectSchema, async (p) => ({ volunteer: await this.injectFailure(p.stage) }));
    handle('churn', churnSchema, (p) => (this.setChurn(p), {}));
    handle('sample', sampleSchema, async (p) => ({ result: await this.sample(p) }));
    handle('runs', null, () => ({ runs: this.coord.store.listRuns({ liveId: this.coord.runId }) }));
    handle('run', runIdSchema, (p) => {
      const detail = this.coord.store.detail(p.runId, this.coord.runId);
      if (!detail) throw new Error(`no run ${p.runId}`);
      return { detail };
    });
    socket.emit('swarm', this.snapshot());
  }

  // ---- HTTP --------------------------------------------------------------------------------

  /** Handles /api/operator/*; returns false for other paths. */
  async handleHttp(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    if (!url.pathname.startsWith('/api/operator/')) return false;
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
      void res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers }).end(JSON.stringify(body));
    const path = url.pathname.slice('/api/operator/'.length);
    const address = clientAddress(req, this.coord.opts.trustProxy === true);
    const ticket = path === 'export' ? url.searchParams.get('ticket') : null;
    if (ticket !== null) {
      // A signed export link: valid once, for EXPORT_TICKET_MS; a bad one counts as a wrong token.
      if (!this.throttle.allowed(address)) return json(429, { error: 'too many wrong operator tokens from this address; try again later' }, { 'retry-after': String(this.throttle.retryAfterSeconds) }), true;
      if (!this.useTicket(ticket)) {
        this.throttle.failed(address);
        this.coord.metrics.authFailures.inc({ result: 'wrong' });
        return json(401, { error: 'export link expired or already used; ask the dashboard for a new one' }), true;
      }
    } else {
      const r = this.authenticate(requestToken(req), address);
      if (r === 'throttled') return json(429, { error: 'too many wrong operator tokens from this address; try again later' }, { 'retry-after': String(this.throttle.retryAfterSeconds) }), true;
      if (r !== 'ok') {
        json(401, { error: 'operator token required (Authorization: Bearer <token>)' }, { 'www-authenticate': 'Bearer realm="swarm operator"' });
        return true;
      }
    }
    try {
      if (path === 'export-link') {
        const validate = url.searchParams.get('validate') === '0' ? '&validate=0' : '';
        return json(200, { url: `/api/operator/export?ticket=${this.newTicket()}${validate}`, expiresInSeconds: EXPORT_TICKET_MS / 1000 }), true;
      }
      if (path === 'state') return json(200, this.snapshot()), true;
      if (path === 'runs') return json(200, this.coord.store.listRuns({ liveId: this.coord.runId })), true;
      const m = /^runs\/([A-Za-z0-9_-]{1,64})$/.exec(path);
      if (m) {
        const detail = this.coord.store.detail(m[1]!, this.coord.runId);
        return detail ? json(200, detail) : json(404, { error: `no run ${m[1]}` }), true;
      }
      if (path === 'export') {
        const validate = url.searchParams.get('validate') !== '0';
        const model = await this.exportModel({ validate });
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': String(model.bytes.byteLength),
          'content-disposition': `attachment; filename="${model.filename}"`,
          'cache-control': 'no-store',
          'x-swarm-iteration': String(model.iteration),
          ...(model.valLoss !== null ? { 'x-swarm-val-loss': String(model.valLoss) } : {}),
        });
        res.end(req.method === 'HEAD' ? undefined : model.bytes);
        return true;
      }
      json(404, { error: 'not found' });
    } catch (e) {
      json(e instanceof HttpError ? e.status : 500, { error: (e as Error).message });
    }
    return true;
  }
}
