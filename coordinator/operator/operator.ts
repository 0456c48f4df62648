/**
 * The operator's side of the coordinator: the `/operator` socket.io namespace the dashboard joins
 * with the operator token, live pushes (swarm snapshot, iterations, events), persistence of
 * iterations, and the controls: pause, recovery strategy, injected failures, churn (churn.ts),
 * sampling and model export (model-export.ts). The HTTP endpoints are operator-http.ts; token
 * checks operator-auth.ts. It sees the coordinator only through OperatorContext.
 *
 * Volunteers connect to the default namespace, which has none of these events (and rejects
 * unknown ones); the operator namespace's middleware refuses any handshake without the token.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Namespace, Server, Socket } from 'socket.io';
import type { z } from 'zod';
import {
  churnSchema,
  injectSchema,
  pauseSchema,
  runIdSchema,
  sampleSchema,
  partialEvalSchema,
  strategySchema,
  type Ack,
  type ChurnConfig,
  type EventRow,
  type IterationRecord,
  type OperatorInit,
  type OperatorToServer,
  type SampleResult,
  type ServerToOperator,
  type StageSlot,
  type SwarmSnapshot,
  type TabInfo,
} from '../../shared/protocol/operator.js';
import { RECOVERY_STRATEGIES, type RecoveryStrategy } from '../../shared/run-settings.js';
import type { Volunteer } from '../tabs/registry.js';
import { clientAddress } from '../gateway/client-address.js';
import { generate, swarmLogits } from './sampling.js';
import { PartialEval } from './partial-eval.js';
import { evalOrder } from '../../shared/schedule/skip-paths.js';
import { OperatorAuth } from './operator-auth.js';
import { ModelExport, type ExportedModel } from './model-export.js';
import { OperatorHttp } from './operator-http.js';
import { Churn } from './churn.js';
import { RunHold } from './run-hold.js';
import type { OperatorContext, OperatorTabs } from './operator-context.js';

type OperatorSocket = Socket<OperatorToServer, ServerToOperator>;

/**
 * `tokensPerIteration`: every microbatch passes through every stage, so a stage's throughput is
 * the iteration's tokens over its own compute time (the tab's own report only counts tokens at
 * the embedding, i.e. stage 0).
 */
function tabInfo(v: Volunteer, now: number, tokensPerIteration: number, speeds: OperatorTabs['speeds'], groupDone: number): TabInfo {
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

export class Operator {
  private nsp: Namespace<OperatorToServer, ServerToOperator> | null = null;
  private sampling = false;
  private lastSwarmKey = '';
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private closed = false;
  readonly auth: OperatorAuth;
  private readonly hold: RunHold;
  private readonly churn: Churn;
  private readonly exporter: ModelExport;
  private readonly http: OperatorHttp;
  private readonly partial: PartialEval;

  constructor(private ctx: OperatorContext, token: string) {
    this.auth = new OperatorAuth(token, { metrics: ctx.metrics, log: ctx.log });
    this.hold = new RunHold((paused) => ctx.run.setPaused(paused));
    this.churn = new Churn(ctx.run.nStages, ctx.tabs, ctx.events);
    this.exporter = new ModelExport(ctx, this.hold, () => this.pushSwarm());
    this.partial = new PartialEval(ctx, this.hold);
    this.http = new OperatorHttp(ctx, this.auth, this.exporter, () => this.snapshot(), this.partial);
  }

  get token(): string {
    return this.auth.token;
  }

  /** Joins the socket.io server (namespace `/operator`) and the event log. */
  attach(io: Server): void {
    const nsp = io.of('/operator') as unknown as Namespace<OperatorToServer, ServerToOperator>;
    nsp.use((socket, next) => {
      const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
      const r = this.auth.authenticate(token, clientAddress(socket.request, this.ctx.trustProxy));
      if (r === 'missing') return next(new Error('operator token required'));
      if (r === 'throttled') return next(new Error('too many wrong operator tokens from this address; try again later'));
      if (r === 'wrong') return next(new Error('invalid operator token'));
      next();
    });
    nsp.on('connection', (socket) => this.onConnection(socket));
    this.nsp = nsp;
    this.unsubscribe = this.ctx.events.subscribe((e) => this.nsp?.emit('event', e as EventRow));
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

  /** Handles /api/operator/*; returns false for other paths (operator-http.ts). */
  handleHttp(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    return this.http.handle(req, res, url);
  }

  // ---- state -------------------------------------------------------------------------------

  snapshot(): SwarmSnapshot {
    const { run, tabs } = this.ctx;
    const { stages: table, speeds } = tabs;
    const now = Date.now();
    const { settings, config } = run;
    const tokens = settings.microbatches * settings.batch * config.seqLen;
    const stages: StageSlot[] = [];
    for (let s = 0; s < run.nStages; s++) {
      const group = table.replicas(s);
      const groupDone = group.reduce((n, v) => n + speeds.done(v), 0);
      const tabInfos = group.map((v) => tabInfo(v, now, tokens, speeds, groupDone));
      const pending = table.pendingFor(s);
      if (tabInfos.length) stages.push({ stage: s, state: 'training', tab: tabInfos[0]!, tabs: tabInfos, reason: null });
      else if (pending && !table.isRebuilding(s)) stages.push({ stage: s, state: 'waiting', tab: null, tabs: tabInfos, reason: pending.reason });
      else stages.push({ stage: s, state: 'rebuilding', tab: null, tabs: tabInfos, reason: null });
    }
    const tab = (v: Volunteer) => tabInfo(v, now, tokens, speeds, 0);
    return {
      runId: run.runId(),
      time: now,
      status: run.status(),
      paused: this.hold.operatorPaused,
      strategy: run.strategy(),
      strategies: RECOVERY_STRATEGIES,
      swap: run.swap,
      churn: this.churn.state,
      stages,
      spares: tabs.spares().map(tab),
      sampling: this.sampling,
      exporting: this.exporter.exporting,
      cpsr: run.cpsr?.() ?? null,
      p2p: run.p2p(),
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
    const { store, run } = this.ctx;
    const runId = run.runId();
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
    try {
      this.ctx.store.addIteration(this.ctx.run.runId(), r);
    } catch (e) {
      this.ctx.log.error({ err: (e as Error).message }, 'could not store iteration');
    }
    this.nsp?.emit('iteration', r);
    this.churn.step(r);
    this.pushSwarm();
  }

  // ---- controls ----------------------------------------------------------------------------

  setPaused(paused: boolean): void {
    if (!this.hold.setOperatorPause(paused)) return;
    this.ctx.events.add('run', paused ? 'operator paused the run (after the current iteration)' : 'operator resumed the run', { operator: true, action: paused ? 'pause' : 'resume' });
    this.pushSwarm();
  }

  setStrategy(strategy: RecoveryStrategy): void {
    const before = this.ctx.run.strategy();
    if (before === strategy) return;
    this.ctx.run.setStrategy(strategy);
    this.ctx.events.add('run', `operator switched the recovery strategy for the next failure: ${before} -> ${strategy}`, { operator: true, action: 'strategy', from: before, to: strategy });
    this.pushSwarm();
  }

  async injectFailure(stage: number): Promise<string> {
    const { run, tabs, events } = this.ctx;
    if (stage >= run.nStages) throw new Error(`no stage ${stage} (the run has ${run.nStages})`);
    const v = tabs.stages.owner(stage);
    if (!v) throw new Error(`stage ${stage} has no tab to fail right now`);
    events.add('run', `operator injected a failure: stage ${stage} (${v.id})`, { operator: true, action: 'inject', stage, volunteer: v.id });
    await tabs.drop(v, 'operator injected failure');
    return v.id;
  }

  setChurn(c: ChurnConfig): void {
    this.churn.set(c);
    this.pushSwarm();
  }

  async sample(req: z.infer<typeof sampleSchema>): Promise<SampleResult> {
    if (this.sampling) throw new Error('a sample is already being generated');
    const order = req.stages ? evalOrder(req.stages, this.ctx.run.nStages) : undefined;
    this.sampling = true;
    this.pushSwarm();
    const t0 = Date.now();
    try {
      const { run, tabs } = this.ctx;
      const { config, tokenizer } = run;
      const iteration = run.iteration();
      const tokens = await generate(
        (ctx) => swarmLogits(tabs.stages, config, run.nStages, ctx, order),
        tokenizer.encode(req.prompt),
        { length: req.length, temperature: req.temperature, seed: req.seed ?? 1, seqLen: config.seqLen, cancelled: () => this.closed },
      );
      return { prompt: req.prompt, text: tokenizer.decode(tokens), tokens, ms: Date.now() - t0, iteration };
    } finally {
      this.sampling = false;
      this.pushSwarm();
    }
  }

  /** The trained model as one safetensors file (model-export.ts). */
  exportModel(opts: { validate?: boolean } = {}): Promise<ExportedModel> {
    return this.exporter.export(opts);
  }

  // ---- socket.io ---------------------------------------------------------------------------

  private onConnection(socket: OperatorSocket): void {
    this.ctx.log.info({ operator: socket.id }, 'operator dashboard connected');
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
    const { store, run } = this.ctx;
    handle('init', null, () => ({ init: this.init() }));
    handle('pause', pauseSchema, (p) => (this.setPaused(p.paused), {}));
    handle('set_strategy', strategySchema, (p) => (this.setStrategy(p.strategy), {}));
    handle('inject_failure', injectSchema, async (p) => ({ volunteer: await this.injectFailure(p.stage) }));
    handle('churn', churnSchema, (p) => (this.setChurn(p), {}));
    handle('sample', sampleSchema, async (p) => ({ result: await this.sample(p) }));
    handle('partial_eval', partialEvalSchema, async (p) => ({ result: await this.partial.evaluate(p.stages) }));
    handle('runs', null, () => ({ runs: store.listRuns({ liveId: run.runId() }) }));
    handle('run', runIdSchema, (p) => {
      const detail = store.detail(p.runId, run.runId());
      if (!detail) throw new Error(`no run ${p.runId}`);
      return { detail };
    });
    socket.emit('swarm', this.snapshot());
  }
}
