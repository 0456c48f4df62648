/**
 * The coordinator: one HTTP server on one port serving the volunteer page (/), the dashboard
 * (/dashboard), Prometheus metrics (/metrics), /healthz, and the socket.io endpoint volunteers
 * join. This file only wires the parts together, each from its folder:
 *   gateway/    HTTP routes, host and origin checks, TLS, the volunteer sockets (connections)
 *   tabs/       who is connected, what we ask of them, bundles pulled from them, their speed
 *   placement/  the stage table (who serves which stage) and placement
 *   training/   the run loop, the pipeline pass, the barrier, replica sync
 *   screening/  checks of relayed frames and gradient norms
 *   recovery/   the recovery ladder and its strategies, checkpoints, resume after a restart
 *   record/     SQLite history, metrics, the event log
 *   operator/   the dashboard's namespace and endpoints
 *   public/     the volunteer page's public numbers, contributions, the shared sample
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { MAX_SOCKET_BYTES } from '../shared/protocol/events.js';
import type { ServerToVolunteer, VolunteerToServer } from '../shared/protocol/events.js';
import { modelConfigOf, usesSwap, checkSettings, wireOf, dpOf } from '../shared/run-settings.js';
import { forwardPath, hopsFromBlockOrder, swapCounter } from '../shared/schedule/paths.js';
import { checkSkipOptions } from './training/skip-options.js';
import { loadDataset } from '../trainer/corpus-file.js';
import { ByteTokenizer, type Tokenizer } from '../shared/data/tokenizer.js';
import { modelMemory } from '../shared/model/memory.js';
import type { CoordinatorOptions } from './options.js';
import { Registry, type Volunteer } from './tabs/registry.js';
import { TabSpeeds } from './tabs/tab-speed.js';
import { StagePuller } from './tabs/stage-puller.js';
import { askStage, ASK_TIMEOUT_MS, bytesReply, okReply, transferTimeoutMs } from './tabs/ask-stage.js';
import { maxRelayFrameBytes } from './screening/relay-check.js';
import { BundleTransfer } from './tabs/bundle-transfer.js';
import { StageTable } from './placement/stage-table.js';
import { Placement } from './placement/placement.js';
import { Scheduler } from './training/scheduler.js';
import { RunProgress } from './training/run-progress.js';
import { ReplicaSync } from './training/replica-sync.js';
import { DilocoSync } from './training/diloco-sync.js';
import { dilocoJoinsAllowed, streamingOf } from '../shared/dp/streaming.js';
import { AssignmentRecorder } from './training/assignment-recorder.js';
import { copyDilocoState } from './training/diloco-join.js';
import { PseudoGradReview } from './screening/pseudo-grad-review.js';
import { pullStageState } from './tabs/bundle-check.js';
import type { TaskSender } from './training/task-book.js';
import { Recovery } from './recovery/recovery.js';
import { CheckpointStore } from './recovery/checkpoint-store.js';
import { newRunId } from './recovery/resume.js';
import { ResumeWindow } from './recovery/resume-window.js';
import { ResumeClaims } from './recovery/resume-claims.js';
import { SwarmMetrics } from './record/metrics.js';
import { EventLog } from './record/events-log.js';
import { createLogger, type Logger } from './record/log.js';
import { RunStore } from './record/store.js';
import { Operator } from './operator/operator.js';
import { newOperatorToken } from './operator/operator-auth.js';
import type { OperatorContext } from './operator/operator-context.js';
import { PruningSessionAdapter } from './gateway/session-adapter.js';
import { VolunteerConnections, VOLUNTEERS_ROOM } from './gateway/volunteer-connections.js';
import { HttpRoutes } from './gateway/http-routes.js';
import { maxBundleBytes, maxMessageBytes } from './gateway/message-limits.js';
import { createSecureServer } from './gateway/tls.js';
import { clientAddress } from './gateway/client-address.js';
import { HostCheck, originAllowed } from './gateway/host-check.js';
import { Contributions } from './public/contributions.js';
import { SharedSample } from './public/shared-sample.js';
import { handlePublicRoute } from './public/public-routes.js';

import { P2pRoutes, DEFAULT_P2P_ROUTES } from './training/p2p-routes.js';
import { P2pSignalling, DEFAULT_P2P } from './gateway/p2p-signalling.js';
import { markHop, taskInputKey } from '../shared/transport/hop-trace.js';
import { pairLinkRows } from './training/pair-link-stats.js';
import { registerPairLinkGauges } from './record/pair-link-gauges.js';

export { DEFAULT_COORDINATOR, type CoordinatorOptions } from './options.js';

export class Coordinator {
  readonly metrics = new SwarmMetrics();
  readonly log: Logger;
  readonly events: EventLog;
  readonly registry = new Registry();
  /** Who serves which stage: the one owner of that state. */
  readonly stages: StageTable;
  /** Where the run is: the iteration counter, last losses and norms, the record. */
  readonly progress: RunProgress;
  readonly speeds = new TabSpeeds();
  readonly placement: Placement;
  readonly scheduler: Scheduler;
  readonly recovery: Recovery;
  readonly replicaSync: ReplicaSync;
  /** How bundles (weights, states, gradients) are pulled from tabs: in chunks. */
  readonly transfer: BundleTransfer;
  readonly connections: VolunteerConnections;
  /** `--transport p2p|auto`: which hops go peer to peer, and the signalling between those tabs. */
  readonly p2pRoutes: P2pRoutes;
  readonly p2pSignalling: P2pSignalling;
  readonly io: Server<VolunteerToServer, ServerToVolunteer>;
  /** How tasks reach tabs: through the socket's room, so a tab back from a blip gets what it missed. */
  readonly taskSender: TaskSender;
  /** `--dp diloco`: the record of which replica ran each hop (null in exact mode). */
  readonly assignment: AssignmentRecorder | null;
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
  /** The run's tokenizer (samples, the export). */
  readonly tokenizer: Tokenizer;
  /** Assignment secrets (hashed in the store) that prove a returning tab's claim. */
  private claims: ResumeClaims;
  /** The run's id (a resumed run keeps its id; a resume nobody answers starts a new one). */
  runId: string;
  /** Set while a restarted coordinator waits for the tabs of its previous run. */
  private resume: ResumeWindow | null = null;
  url = '';

  constructor(readonly opts: CoordinatorOptions) {
    checkSettings(opts.settings);
    const { settings } = opts;
    checkSkipOptions(opts.skipRatio ?? 0, settings);
    const handler = (req: IncomingMessage, res: ServerResponse) => this.routes.handle(req, res);
    this.http = opts.tls ? createSecureServer(opts.tls, handler) : createServer(handler);
    this.log = createLogger({ level: opts.logLevel, silent: opts.silent });
    this.events = new EventLog(this.log);
    const config = modelConfigOf(settings);
    const swap = usesSwap(settings);
    this.store = new RunStore(opts.dataDir, { metrics: this.metrics, log: this.log });
    this.runId = opts.resumeRun?.id ?? newRunId();
    if (!opts.resumeRun) this.startStoredRun();
    this.events.subscribe((e) => this.store.addEvent(this.runId, e));
    this.claims = new ResumeClaims(this.store, () => this.runId);
    const dataset = opts.dataset ?? loadDataset({ path: opts.data, tokenizer: opts.tokenizer, seqLen: config.seqLen }).dataset;
    this.tokenizer = opts.tokenizerImpl ?? new ByteTokenizer();
    this.stages = new StageTable(settings.stages);
    this.progress = new RunProgress(settings.stages, this.metrics);
    this.transfer = new BundleTransfer(opts.transferChunkBytes, maxBundleBytes(config));
    const p2p = { ...DEFAULT_P2P, ...opts.p2p };
    registerPairLinkGauges(this.metrics.registry, () => pairLinkRows(this.registry.all()));
    this.p2pRoutes = new P2pRoutes(
      { ...DEFAULT_P2P_ROUTES, transport: p2p.transport },
      {
        stages: this.stages,
        metrics: this.metrics,
        audit: {
          reject: (v, reason, message) => this.connections.reject(v, reason, message),
          metrics: this.metrics,
          fetch: (receiver, info) => askStage(receiver, 'p2p_frame', [info], bytesReply, ASK_TIMEOUT_MS.weights),
          sampleRate: p2p.auditRate,
          maxBytes: maxRelayFrameBytes(settings.batch, config.seqLen, config.dModel, wireOf(settings)),
        },
      },
    );
    const reject = (v: Volunteer, reason: string, message: string) => this.connections.reject(v, reason, message);
    // A tab that answers pings but not what we ask of it is dropped (counted as silent where it timed out).
    const dropLater = (v: Volunteer, why: string) => this.connections.dropLater(v, why);
    const unresponsive = (v: Volunteer, why: string) => {
      this.metrics.rejected.inc({ reason: 'silent' });
      dropLater(v, `unresponsive: ${why}`);
    };
    this.placement = new Placement(
      {
        config,
        lr: settings.lr,
        maxReplicas: opts.maxReplicas,
        rebalanceEvery: opts.rebalanceEvery,
        wire: wireOf(settings),
        stageMemory: modelMemory(config, { batch: settings.batch, microbatches: settings.microbatches }),
        dp: dpOf(settings),
        ...((opts.skipRatio ?? 0) > 0 ? { skip: { ratio: opts.skipRatio!, microbatches: settings.microbatches, followSpeed: (opts.skipSchedule ?? 'collision') === 'collision' } } : {}),
      },
      {
        stages: this.stages,
        transfer: this.transfer,
        speeds: this.speeds,
        events: this.events,
        log: this.log,
        drop: dropLater,
        announceGroup: (s) => this.connections.announceGroup(s),
        issueClaim: (v, stage) => this.claims.issue(v, stage),
        // diloco: joins and moves only right after a sync (or before the first iteration); streaming: while none is in flight.
        joinsAllowed: () => dpOf(settings).mode !== 'diloco' || dilocoJoinsAllowed(streamingOf(dpOf(settings)), this.progress.iteration, this.scheduler?.diloco?.inFlight ?? false),
      },
    );
    const puller = new StagePuller({ transfer: this.transfer, timeoutMs: opts.pullTimeoutMs, replicas: (stage) => this.stages.replicas(stage), reject, unresponsive });
    // Loads a state into a tab that already serves `stage` (a rollback, a re-sync): the same assignment again.
    const reload = async (v: Volunteer, stage: number, state: Uint8Array | null, reason: string) => {
      const staged = state !== null && (await this.transfer.push(v, state)); // a large state goes ahead in pieces (bundle-push.ts)
      const assignment = { stage, config, lr: settings.lr, weights: staged ? null : state, reason, wire: wireOf(settings), dp: dpOf(settings), ...(staged ? { staged: true as const } : {}) };
      await askStage(v, 'assign', [assignment], okReply, transferTimeoutMs(ASK_TIMEOUT_MS.state, state?.byteLength ?? 0));
      // diloco: a tab reloaded while its stage has siblings takes their outer state too (a rebuilt
      // stage's only replica starts a fresh one from its weights).
      const sibling = dpOf(settings).mode === 'diloco' ? this.stages.replicas(stage).find((r) => r !== v) : undefined;
      if (sibling) await copyDilocoState(this.transfer, config, stage, sibling, v);
    };
    this.recovery = new Recovery(
      { ...opts.recovery, strategy: settings.recovery },
      {
        run: { config, nStages: settings.stages },
        progress: this.progress,
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
    this.io = new Server<VolunteerToServer, ServerToVolunteer>(this.http, {
      // The largest legitimate message of this run plus slack, not a fixed 64 MiB.
      maxHttpBufferSize: Math.min(MAX_SOCKET_BYTES, maxMessageBytes(config, settings.batch, opts.transferChunkBytes)),
      pingInterval: Math.min(5000, Math.max(500, opts.heartbeatTimeoutMs / 2)),
      pingTimeout: opts.heartbeatTimeoutMs,
      connectionStateRecovery: { maxDisconnectionDuration: opts.graceMs, skipMiddlewares: true },
      adapter: PruningSessionAdapter as never,
      allowRequest: (req, cb) => cb(null, this.routes.hostAllowed(req) && originAllowed(req)),
    });
    const sendTask: TaskSender = {
      send: (v, meta, input, targets) => {
        markHop('coord.task', () => taskInputKey(meta, input));
        this.io.to(v.socket.id).emit('task', meta, input, targets);
      },
    };
    // diloco: which replica ran each hop, so the local trainer can replay the run.
    this.assignment = dpOf(settings).mode === 'diloco' ? new AssignmentRecorder(settings.microbatches, (s) => this.stages.replicas(s), settings.stages) : null;
    this.taskSender = this.assignment ? this.assignment.wrap(sendTask) : sendTask;
    this.scheduler = new Scheduler(
      {
        settings,
        config,
        swap,
        dataset,
        evalEvery: opts.evalEvery,
        evalBatches: opts.evalBatches,
        maxIterations: opts.maxIterations,
        stepTimeoutMs: opts.stepTimeoutMs,
        taskTimeoutMs: opts.taskTimeoutMs,
        vacancyAlertMs: opts.vacancyAlertMs,
        outlierFactor: opts.outlierFactor,
        maxInFlight: opts.maxInFlight,
        skip: {
          ratio: opts.skipRatio ?? 0,
          scheduler: opts.skipSchedule ?? 'collision',
          record: { save: (it, plan) => this.store.addSkipPlan(this.runId, it, plan), load: () => (opts.resumeRun ? this.store.skipPlans(this.runId, opts.resumeRun.iteration) : []) },
        },
      },
      {
        progress: this.progress,
        stages: this.stages,
        speeds: this.speeds,
        placement: this.placement,
        transfer: this.transfer,
        metrics: this.metrics,
        events: this.events,
        log: this.log,
        ladder: this.recovery,
        tabs: { sender: this.taskSender, reject, quarantine: (v, reason) => this.connections.quarantine(v, reason), unresponsive: (v, why) => dropLater(v, `unresponsive: ${why}`), p2p: this.p2pRoutes },
        // One broadcast per change, encoded once, instead of a send per tab.
        broadcast: {
          status: (s) => {
            this.metrics.updateStages(Array.from({ length: this.stages.nStages }, (_, i) => this.stages.replicas(i)), this.placement.waitingCount());
            this.io.to(VOLUNTEERS_ROOM).emit('run_status', s);
          },
          abandon: (iteration) => this.io.to(VOLUNTEERS_ROOM).emit('abandon', { iteration }),
        },
        onIteration: async (r) => {
          await this.recovery.afterIteration(r);
          // diloco replicas differ by design between syncs: their fingerprints are compared right after each sync instead.
          if (dpOf(settings).mode !== 'diloco') await this.replicaSync.afterIteration(r.iteration);
          // r.iteration counts completed iterations; the tasks of the one just done carried r.iteration - 1.
          const assigned = this.assignment?.stored(r.iteration - 1);
          if (assigned) this.store.addAssignment(this.runId, assigned);
          this.operator.onIteration(r);
        },
        diloco:
          dpOf(settings).mode === 'diloco'
            ? new DilocoSync({
                config,
                nStages: settings.stages,
                dp: dpOf(settings),
                replicas: (stage) => this.stages.replicas(stage),
                metrics: this.metrics,
                events: this.events,
                log: this.log,
                reject,
                quarantine: (v, reason) => this.connections.quarantine(v, reason),
                unresponsive,
                // --replica-sync-every 0 turns the fingerprint check off in diloco too.
                afterApply: opts.replicaSyncEvery > 0 ? (stage, iteration) => this.replicaSync.syncStage(stage, iteration) : undefined,
                // A replica left out by the sync's screen: unverifiable, reset to its group's synced state, on probation.
                outliers: new PseudoGradReview({
                  probation: () => this.scheduler?.probation ?? null,
                  quarantine: (v, reason) => this.connections.quarantine(v, reason),
                  reset: async (v, stage, reason) => {
                    const donor = this.stages.replicas(stage).find((r) => r !== v && r.socket.connected);
                    if (!donor) throw new Error('no sibling holds the synced state');
                    await reload(v, stage, await pullStageState(this.transfer, config, stage, donor), reason);
                  },
                  unresponsive,
                  events: this.events,
                  metrics: this.metrics,
                }),
              })
            : undefined,
      },
    );
    this.replicaSync = new ReplicaSync(opts.replicaSyncEvery, {
      config,
      nStages: settings.stages,
      replicas: (stage) => this.stages.replicas(stage),
      puller,
      reload,
      unresponsive,
      reject,
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
    const tokensPerMicrobatch = settings.batch * config.seqLen;
    this.p2pSignalling = new P2pSignalling(p2p, {
      tab: (id) => this.registry.get(id),
      mayTalk: (a, b) => this.p2pRoutes.mayTalk(a, b),
      metrics: this.metrics,
      reject,
      warn: (v, message) => this.log.warn({ volunteer: v.id }, message),
    });
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
        // Training work of a tab, credited to its browser; a microbatch counts on the hop that ran a stage's blocks.
        credit: (v, meta) => {
          if (!v.caps.browserId) return;
          const order = this.scheduler.trainOrder(meta.iteration, meta.mb);
          const path = order ? hopsFromBlockOrder(order, settings.stages) : forwardPath(swapCounter(meta.iteration, settings.microbatches, meta.mb), settings.stages, swap);
          this.contributions.creditTask(v.caps.browserId, { dir: meta.dir, computeMs: meta.computeMs, runsBlocks: path[meta.hop]?.segment.blocks === true }, tokensPerMicrobatch);
        },
        setNickname: (id, nickname) => this.contributions.setNickname(id, nickname),
        forget: (v) => {
          this.claims.revoke(v);
          this.p2pRoutes.forget(v);
        },
        p2p: this.p2pSignalling,
      },
    );
    // Who serves which stage changed: every page hears the new status (e.g. "3 more needed"); the
    // broadcast updates the gauges too.
    this.stages.onChange(() => this.scheduler.broadcastStatus());
    this.io.on('connection', (socket) => this.connections.onConnection(socket));
    if (opts.resumeRun) {
      this.resume = new ResumeWindow(opts.resumeRun.iteration, opts.resumeWaitMs, {
        stages: this.stages,
        placement: this.placement,
        events: this.events,
        progress: this.progress,
        runId: () => this.runId,
        verifyClaim: (v, stage, token) => this.claims.verify(v, stage, token),
        isConnected: (v) => this.registry.has(v),
        startNewRun: () => {
          this.runId = newRunId();
          this.startStoredRun();
          return this.runId;
        },
        rebuild: (stage) => this.recovery.stageLost(stage),
        restoreWithoutTabs: () => this.recovery.resumeWithoutTabs(),
        strategy: () => this.recovery.strategy.name,
        announceGroup: (s) => this.connections.announceGroup(s),
        kick: () => this.scheduler.kick(),
      });
    }
    this.sharedSample = new SharedSample(this.scheduler, this.stages, this.log, opts.sampleEverySeconds * 1000, this.tokenizer);
    this.operator = new Operator(this.operatorContext(), opts.operatorToken || newOperatorToken());
    this.operator.attach(this.io);
  }

  /** The narrow view the operator side gets (operator/operator-context.ts). */
  private operatorContext(): OperatorContext {
    const { scheduler, recovery, stages, speeds, placement, transfer } = this;
    const { settings, config, swap } = scheduler.opts;
    return {
      run: {
        settings,
        config,
        swap,
        nStages: scheduler.nStages,
        tokenizer: this.tokenizer,
        evalBatches: this.opts.evalBatches,
        stepTimeoutMs: this.opts.stepTimeoutMs,
        runId: () => this.runId,
        status: () => scheduler.status(),
        iteration: () => scheduler.iteration,
        setPaused: (p) => scheduler.setPaused(p),
        validate: (stages) => scheduler.validate(stages),
        strategy: () => recovery.strategy.name,
        setStrategy: (s) => recovery.setStrategy(s),
        skipSchedule: () => scheduler.skips?.recorded() ?? null,
        cpsr: () => recovery.cpsrStatus,
        p2p: () => ({
          transport: this.p2pRoutes.opts.transport,
          fallbacks: Object.fromEntries(this.p2pRoutes.fallbacks),
          backedOff: this.p2pRoutes.backedOff().map((b) => ({ pair: b.pair, seconds: Math.ceil(b.ms / 1000), failures: b.failures })),
          pairs: pairLinkRows(this.registry.all()),
        }),
      },
      tabs: {
        stages,
        speeds,
        spares: () => placement.spares(),
        pullWeights: (v, timeoutMs) => transfer.pull(v, { event: 'get_weights', parts: 'all' }, timeoutMs),
        drop: (v, why) => this.drop(v, why),
      },
      store: this.store,
      events: this.events,
      metrics: this.metrics,
      log: this.log,
      trustProxy: this.opts.trustProxy === true,
    };
  }

  private startStoredRun(): void {
    const o = this.opts;
    this.store.startRun(this.runId, { settings: o.settings, config: modelConfigOf(o.settings), evalEvery: o.evalEvery, evalBatches: o.evalBatches, maxIterations: o.maxIterations, data: o.data ?? null });
  }

  get operatorToken(): string {
    return this.operator.token;
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
    this.scheduler.start();
    this.sharedSample.start();
    this.resume?.start();
    this.events.add('run', `coordinator ${this.runId} listening on ${this.url} (bound to ${this.opts.host})`, { settings: this.opts.settings as unknown as Record<string, unknown> });
    return this.url;
  }

  async close(): Promise<void> {
    this.sharedSample.stop();
    this.connections.close();
    this.p2pSignalling.close();
    this.resume?.cancel();
    await this.scheduler.close();
    await this.recovery.close();
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

  /** Removes a volunteer for good; its stage goes down the recovery ladder. */
  drop(v: Volunteer, why: string): Promise<void> {
    return this.connections.drop(v, why);
  }
}
