/**
 * The run: assigns stages, drives synchronous iterations and relays tensors between stages.
 *
 * One iteration: microbatches enter the pipeline (at most `maxInFlight` at once: the number of
 * stages, i.e. 1F1B's warm-up depth); each follows its forward path hop by hop, then its
 * backward path; tabs run queued backward tasks first. When every microbatch is back at the
 * embedding, the barrier runs in two phases: every stage reports its gradient norm (screened for
 * outliers before anyone steps), then every stage clips and takes its Adam step.
 *
 * A stage lost mid-iteration abandons the iteration on every tab (stashes and partial gradients
 * dropped, nothing applied) and hands the stage to recovery (recovery.ts).
 */
import type { ResolvedConfig } from '../shared/model/config.js';
import { forwardPath, type Hop } from '../shared/schedule/paths.js';
import { encodeTensorFrame, FrameError } from '../shared/protocol/index.js';
import type { OutMeta, RunStatus, TaskMeta } from '../shared/protocol/events.js';
import { stepAckSchema, gradNormAckSchema } from '../shared/protocol/events.js';
import { NormOutlierDetector } from './outliers.js';
import { checkRelayFrame, maxRelayFrameBytes } from './relay-check.js';
import { askStage, AskError, ASK_TIMEOUT_MS, okReply } from './ask-stage.js';
import type { TokenDataset, Batch } from '../shared/data/dataset.js';
import type { GradNorms } from '../shared/model/stage.js';
import { wireOf, type RunSettings } from '../shared/run-settings.js';
import type { Registry, Volunteer } from './registry.js';
import type { SwarmMetrics } from './metrics.js';
import type { EventLog } from './events-log.js';
import type { Logger } from './log.js';

export interface SchedulerOptions {
  settings: RunSettings;
  config: ResolvedConfig;
  swap: boolean;
  dataset: TokenDataset;
  evalEvery: number;
  evalBatches: number;
  /** Stop after this many completed iterations (0 = run forever). */
  maxIterations: number;
  /** Give up on a step ack after this long (the tab is then treated as lost). */
  stepTimeoutMs: number;
  /** A tab that leaves a task unanswered this long is treated as lost (alive but not computing). */
  taskTimeoutMs: number;
  /** A gradient norm this many times the stage's recent median is quarantined. */
  outlierFactor: number;
}

export interface IterationRecord {
  iteration: number;
  trainLoss: number;
  valLoss: number | null;
  seconds: number;
  time: number;
  tokens: number;
  norms: GradNorms[];
}

/** Thrown inside an iteration when a stage is lost. */
export class IterationAbandoned extends Error {
  constructor(readonly stage: number, readonly lostMicrobatches: number[]) {
    super(`iteration abandoned: stage ${stage} lost`);
  }
}

interface Outstanding {
  meta: TaskMeta;
  sentAt: number;
}

type Reject = (v: Volunteer, reason: string, message: string) => void;
type Quarantine = (v: Volunteer, reason: string) => void;

/** A vacant stage's weights waiting for a volunteer (null = build from the seed). */
export interface PendingStage {
  weights: Uint8Array | null;
  reason: string;
  lrScale: number;
}

export class Scheduler {
  iteration = 0;
  state: RunStatus['state'] = 'waiting';
  paused = false;
  readonly history: IterationRecord[] = [];
  lastNorms: (GradNorms | null)[];
  lastTrainLoss: number | null = null;
  lastValLoss: number | null = null;
  /** Stages without a volunteer and the weights the next one gets. */
  readonly vacant = new Map<number, PendingStage>();
  private outstanding = new Map<string, Outstanding>();
  private attempt = 0;
  /** Screens each stage's gradient norm against its own history. */
  readonly outliers: NormOutlierDetector;
  private current: { attempt: number; iteration: number; abort: (e: Error) => void; onOut: (v: Volunteer, meta: OutMeta, frame: Uint8Array | null) => void } | null = null;
  private wake: (() => void) | null = null;
  private closed = false;
  private loopDone: Promise<void> | null = null;
  /** Called when a stage is lost (set by the coordinator: recovery). */
  onStageLost: (stage: number) => Promise<void> = async () => {};
  /** Called when a tab answers pings but leaves a task unanswered past taskTimeoutMs. */
  onUnresponsive: (v: Volunteer, why: string) => void = () => {};
  private watchdog: NodeJS.Timeout | null = null;
  /** Called after every completed iteration. */
  onIteration: (r: IterationRecord) => Promise<void> = async () => {};
  /** How a task reaches a volunteer (the coordinator routes through socket.io rooms so a tab back from a blip gets it). */
  emitTask: (v: Volunteer, meta: TaskMeta, input: Uint8Array | null, targets: Uint8Array | null) => void = (v, m, i, t) =>
    void v.socket.emit('task', m, i, t);

  constructor(
    readonly opts: SchedulerOptions,
    private registry: Registry,
    private metrics: SwarmMetrics,
    private events: EventLog,
    private log: Logger,
    private reject: Reject,
    private quarantine: Quarantine,
  ) {
    const S = this.nStages;
    this.outliers = new NormOutlierDetector(S, opts.outlierFactor);
    this.lastNorms = Array.from({ length: S }, () => null);
    for (let s = 0; s < S; s++) this.vacant.set(s, { weights: null, reason: 'start', lrScale: 1 });
    metrics.stages.set(S);
  }

  get nStages(): number {
    return this.opts.settings.stages;
  }

  status(): RunStatus {
    return {
      state: this.state,
      iteration: this.iteration,
      stages: this.nStages,
      needed: Math.max(0, this.vacant.size - this.registry.spares().length),
      trainLoss: this.lastTrainLoss,
      valLoss: this.lastValLoss,
    };
  }

  broadcastStatus(): void {
    const s = this.status();
    for (const v of this.registry.all()) v.socket.emit('run_status', s);
    this.updateVolunteerGauges();
  }

  updateVolunteerGauges(): void {
    const all = this.registry.all();
    this.metrics.volunteers.set({ state: 'active' }, all.filter((v) => v.stage !== null).length);
    this.metrics.volunteers.set({ state: 'spare' }, all.filter((v) => v.stage === null).length);
    this.metrics.stageBackend.reset();
    for (const v of all) if (v.stage !== null) this.metrics.stageBackend.set({ stage: String(v.stage), backend: v.caps.backend }, 1);
  }

  kick(): void {
    this.wake?.();
  }

  /** Assign vacant stages to spares (fastest first). */
  /** While true (a resumed run waiting for its tabs), vacant stages are not given to spares. */
  holdVacancies = false;

  async fillVacancies(): Promise<void> {
    if (this.holdVacancies) return;
    for (const stage of [...this.vacant.keys()]) {
      // Calls overlap (every join starts one): another may have taken this stage while we awaited.
      const pending = this.vacant.get(stage);
      if (!pending) continue;
      const v = this.registry.bestSpare();
      if (!v) break;
      this.vacant.delete(stage);
      v.stage = stage;
      try {
        const assignment = { stage, config: this.opts.config, lr: this.opts.settings.lr * pending.lrScale, wire: wireOf(this.opts.settings), weights: pending.weights, reason: pending.reason };
        await askStage(v, 'assign', [assignment], okReply, ASK_TIMEOUT_MS.assign);
        this.outliers.reset(stage);
        this.events.add('assign', `stage ${stage} -> ${v.id} (${v.caps.backend}; ${pending.reason})`, { stage, volunteer: v.id, reason: pending.reason });
      } catch (e) {
        this.log.warn({ volunteer: v.id, stage, err: (e as Error).message }, 'assignment failed');
        if (v.stage === stage) v.stage = null;
        this.vacant.set(stage, pending);
        v.socket.disconnect(true);
      }
    }
    this.broadcastStatus();
  }

  /** A volunteer serving `stage` is gone (left, crashed, timed out, quarantined). */
  async stageLost(stage: number): Promise<void> {
    const lost = this.current ? [...new Set([...this.outstanding.values()].map((o) => o.meta.mb))] : [];
    this.current?.abort(new IterationAbandoned(stage, lost));
    this.state = 'recovering';
    await this.onStageLost(stage);
    await this.fillVacancies();
    this.kick();
  }

  start(): void {
    this.loopDone = this.loop();
    this.watchdog = setInterval(() => this.checkOverdue(), Math.min(1000, Math.max(50, this.opts.taskTimeoutMs / 4)));
    this.watchdog.unref();
  }

  /** Drops the owner of the oldest overdue task, if any. */
  private checkOverdue(): void {
    const now = Date.now();
    for (const o of this.outstanding.values()) {
      if (now - o.sentAt < this.opts.taskTimeoutMs) continue;
      const owner = this.registry.owner(o.meta.stage);
      if (owner) this.onUnresponsive(owner, `task ${o.meta.dir} mb ${o.meta.mb} hop ${o.meta.hop} unanswered for ${now - o.sentAt} ms`);
      return;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.watchdog) clearInterval(this.watchdog);
    this.current?.abort(new Error('coordinator closing'));
    this.kick();
    await this.loopDone;
  }

  private async sleepUntilKicked(ms: number): Promise<void> {
    await new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      this.wake = () => {
        clearTimeout(t);
        r();
      };
    });
    this.wake = null;
  }

  private ready(): boolean {
    for (let s = 0; s < this.nStages; s++) if (!this.registry.owner(s)) return false;
    return true;
  }

  private async loop(): Promise<void> {
    while (!this.closed) {
      if (this.opts.maxIterations > 0 && this.iteration >= this.opts.maxIterations) {
        if (this.state !== 'paused') {
          this.state = 'paused';
          this.events.add('run', `reached --max-iterations ${this.opts.maxIterations}; run finished`);
          this.broadcastStatus();
        }
        await this.sleepUntilKicked(1000);
        continue;
      }
      if (this.paused || !this.ready()) {
        // A lost stage keeps the run 'recovering' until it is served again, including while its
        // weights are still being rebuilt (it only becomes vacant once they are ready).
        const next = this.paused ? 'paused' : this.state === 'recovering' ? 'recovering' : 'waiting';
        if (next !== this.state) {
          this.state = next;
          this.broadcastStatus();
        }
        await this.sleepUntilKicked(500);
        continue;
      }
      if (this.state !== 'running') {
        this.state = 'running';
        this.broadcastStatus();
      }
      try {
        await this.runIteration();
      } catch (e) {
        if (e instanceof IterationAbandoned) {
          this.metrics.abandoned.inc();
          this.events.add('run', `iteration ${this.iteration} abandoned: stage ${e.stage} lost (microbatches in flight: ${e.lostMicrobatches.join(', ') || 'none'})`, {
            iteration: this.iteration,
            stage: e.stage,
            lostMicrobatches: e.lostMicrobatches,
          });
          for (const v of this.registry.all()) if (v.stage !== null) v.socket.emit('abandon', { iteration: this.iteration });
        } else if (!this.closed) {
          this.log.error({ err: (e as Error).message }, 'iteration failed');
          await this.sleepUntilKicked(500);
        }
      } finally {
        this.outstanding.clear();
        this.current = null;
      }
    }
  }

  private batchFrames(b: Batch, iteration: number, mb: number): { tokens: Uint8Array; targets: Uint8Array } {
    const shape = [b.batch, b.seqLen];
    const h = { iteration, microbatch: mb, hop: 0, fromStage: -1, toStage: 0, dtype: 'int32' as const, shape };
    return { tokens: encodeTensorFrame({ ...h, kind: 'tokens' }, b.tokens), targets: encodeTensorFrame({ ...h, kind: 'targets' }, b.targets) };
  }

  private send(meta: TaskMeta, input: Uint8Array | null, targets: Uint8Array | null): void {
    const owner = this.registry.owner(meta.stage);
    if (!owner) throw new IterationAbandoned(meta.stage, []);
    this.outstanding.set(taskKey(meta.attempt, meta.mb, meta.dir, meta.hop), { meta, sentAt: Date.now() });
    const bytes = (input?.byteLength ?? 0) + (targets?.byteLength ?? 0);
    this.metrics.relayBytes.inc({ direction: meta.dir === 'B' ? 'backward' : 'forward' }, bytes);
    this.emitTask(owner, meta, input, targets);
  }

  /**
   * Validates a task result against what was asked of this volunteer. Returns the frame bytes to
   * relay (or null), or calls reject and returns undefined.
   */
  private checkOut(v: Volunteer, meta: OutMeta, frame: Uint8Array | null, path: Hop[]): { frame: Uint8Array | null } | undefined {
    const key = taskKey(meta.attempt, meta.mb, meta.dir, meta.hop);
    const o = this.outstanding.get(key);
    if (!o) {
      this.reject(v, 'out_of_turn', `no task ${key} is outstanding`);
      return undefined;
    }
    if (o.meta.stage !== v.stage) {
      this.reject(v, 'wrong_stage', `task ${key} belongs to stage ${o.meta.stage}, not this tab's stage ${v.stage}`);
      return undefined;
    }
    const hop = path[meta.hop]!;
    const headForward = meta.dir !== 'B' && hop.segment.head;
    const expectsFrame = meta.dir === 'B' ? !hop.segment.embed : !hop.segment.head;
    if (headForward !== (meta.loss !== undefined)) {
      this.reject(v, 'schema', headForward ? `task ${key} ran the head and must report a loss` : `task ${key} must not report a loss`);
      return undefined;
    }
    if (expectsFrame !== (frame !== null)) {
      this.reject(v, 'schema', expectsFrame ? `task ${key} must return a tensor frame` : `task ${key} must not return a tensor frame`);
      return undefined;
    }
    if (frame) {
      try {
        const { config, settings } = this.opts;
        const shape = [settings.batch, config.seqLen, config.dModel];
        checkRelayFrame(frame, { kind: meta.dir === 'B' ? 'grad' : 'act', iteration: meta.iteration, microbatch: meta.mb, hop: meta.hop, fromStage: v.stage!, shape, wire: wireOf(settings) }, this.maxFrameBytes());
      } catch (e) {
        const reason = e instanceof FrameError ? e.reason : 'frame';
        this.reject(v, reason, (e as Error).message);
        return undefined;
      }
    }
    this.outstanding.delete(key);
    return { frame };
  }

  maxFrameBytes(): number {
    return maxRelayFrameBytes(this.opts.settings.batch, this.opts.config.seqLen, this.opts.config.dModel, wireOf(this.opts.settings));
  }

  /** Route a task result from a volunteer (called by the socket layer after schema validation). */
  handleOut(v: Volunteer, meta: OutMeta, frame: Uint8Array | null): void {
    if (meta.attempt <= this.attempt && (!this.current || meta.attempt < this.current.attempt)) {
      // A result of an abandoned or finished attempt: late (or replayed); dropped, not an offence.
      this.metrics.staleResults.inc();
      this.metrics.rejected.inc({ reason: 'stale' });
      v.socket.emit('rejected', { reason: 'stale', message: `result for attempt ${meta.attempt}, which is over` });
      return;
    }
    if (!this.current || meta.attempt !== this.current.attempt || meta.iteration !== this.current.iteration) {
      this.reject(v, 'out_of_turn', `result for attempt ${meta.attempt} iteration ${meta.iteration}, which is not in progress`);
      return;
    }
    this.current.onOut(v, meta, frame);
  }

  private runMicrobatches(
    iteration: number,
    count: number,
    dir: 'train' | 'eval',
    batchOf: (mb: number) => Batch,
  ): Promise<number[]> {
    const S = this.nStages;
    const attempt = ++this.attempt;
    const swap = dir === 'train' && this.opts.swap;
    const M = count;
    const maxInFlight = dir === 'train' ? S : M;
    const losses: number[] = new Array(M).fill(NaN);
    const paths = Array.from({ length: M }, (_, mb) => forwardPath(mb, S, swap));
    const frames = Array.from({ length: M }, (_, mb) => this.batchFrames(batchOf(mb), iteration, mb));
    let next = 0;
    let done = 0;
    return new Promise<number[]>((resolve, reject) => {
      const fdir = dir === 'train' ? 'F' : 'E';
      const inject = () => {
        while (next < M && next - done < maxInFlight) {
          const mb = next++;
          const hop = paths[mb]![0]!;
          this.send({ attempt, iteration, mb, dir: fdir, hop: 0, stage: hop.stage, segment: hop.segment }, frames[mb]!.tokens, hop.segment.head ? frames[mb]!.targets : null);
        }
      };
      const finish = () => {
        done++;
        if (done === M) resolve(losses);
        else inject();
      };
      this.current = {
        attempt,
        iteration,
        abort: reject,
        onOut: (v, meta, frame) => {
          const path = paths[meta.mb];
          if (!path || meta.hop >= path.length || (meta.dir === 'E') !== (dir === 'eval')) {
            this.reject(v, 'out_of_turn', `unexpected result ${meta.dir} mb ${meta.mb} hop ${meta.hop}`);
            return;
          }
          const ok = this.checkOut(v, meta, frame, path);
          if (!ok) return;
          try {
            if (meta.dir === 'B') {
              if (meta.hop === 0) return finish();
              const hop = path[meta.hop - 1]!;
              this.send({ attempt, iteration, mb: meta.mb, dir: 'B', hop: meta.hop - 1, stage: hop.stage, segment: hop.segment }, ok.frame, null);
              return;
            }
            if (meta.loss !== undefined) {
              losses[meta.mb] = meta.loss;
              if (dir === 'eval') return finish();
              const last = path.length - 1;
              const hop = path[last]!;
              this.send({ attempt, iteration, mb: meta.mb, dir: 'B', hop: last, stage: hop.stage, segment: hop.segment, lossScale: 1 / M }, null, null);
              return;
            }
            const hop = path[meta.hop + 1]!;
            this.send({ attempt, iteration, mb: meta.mb, dir: fdir, hop: meta.hop + 1, stage: hop.stage, segment: hop.segment }, ok.frame, hop.segment.head ? frames[meta.mb]!.targets : null);
          } catch (e) {
            reject(e);
          }
        },
      };
      try {
        inject();
      } catch (e) {
        reject(e);
      }
    });
  }

  private async runIteration(): Promise<void> {
    const it = this.iteration;
    const { settings, dataset } = this.opts;
    const t0 = Date.now();
    const losses = await this.runMicrobatches(it, settings.microbatches, 'train', (mb) => dataset.trainBatch(settings.seed, it, mb, settings.batch));
    // A stage lost during the barrier aborts these waits at once (not after their timeouts).
    const aborted = new Promise<never>((_, reject) => {
      if (this.current) this.current.abort = reject;
    });
    aborted.catch(() => {});
    const race = <T>(p: Promise<T>): Promise<T> => Promise.race([p, aborted]);
    // The barrier, phase 1: every stage reports its gradient norm; an outlier is quarantined and
    // the iteration abandoned before anyone steps, so a poisoned contribution is never applied.
    const owners = Array.from({ length: this.nStages }, (_, s) => {
      const o = this.registry.owner(s);
      if (!o) throw new IterationAbandoned(s, []);
      return o;
    });
    const norms = await race(Promise.all(
      owners.map(async (owner, s) => {
        const ack = await askStage(owner, 'grad_norm', [{ iteration: it }], gradNormAckSchema, this.opts.stepTimeoutMs).catch((e: unknown) => {
          if (e instanceof AskError && e.failure === 'invalid') this.reject(owner, 'step', `bad gradient-norm acknowledgement: ${e.message}`);
          throw new IterationAbandoned(s, []);
        });
        if (ack.iteration !== it) {
          this.reject(owner, 'step', `gradient-norm acknowledgement for iteration ${ack.iteration}, not ${it}`);
          throw new IterationAbandoned(s, []);
        }
        return ack.preClipNorm;
      }),
    ));
    const outlier = this.outliers.screen(norms);
    if (outlier) {
      const owner = owners[outlier.stage]!;
      this.quarantine(owner, outlier.reason);
      throw new IterationAbandoned(outlier.stage, []);
    }
    // Phase 2: every stage clips and steps. A stage lost now does not undo the step on the
    // others (socket order: they get the step before the abandon), so the iteration counts.
    const acks = await race(Promise.all(
      owners.map(async (owner, s) => {
        const ack = await askStage(owner, 'step', [{ iteration: it }], stepAckSchema, this.opts.stepTimeoutMs).catch((e: unknown) => {
          if (e instanceof AskError && e.failure === 'invalid') this.reject(owner, 'step', `bad step acknowledgement: ${e.message}`);
          throw new IterationAbandoned(s, []);
        });
        if (ack.iteration !== it) {
          this.reject(owner, 'step', `step acknowledgement for iteration ${ack.iteration}, not ${it}`);
          throw new IterationAbandoned(s, []);
        }
        owner.lastStepMs = ack.stepMs;
        return ack;
      }),
    )).catch((e: unknown) => {
      if (e instanceof IterationAbandoned) {
        this.iteration = it + 1;
        this.metrics.iteration.set(this.iteration);
        this.events.add('run', `stage ${e.stage} lost during the optimizer step of iteration ${it}: the surviving stages applied it; the run continues at iteration ${this.iteration}`);
      }
      throw e;
    });
    this.outliers.accept(norms);
    this.current = null;
    this.iteration = it + 1;
    const trainLoss = losses.reduce((a, b) => a + b, 0) / losses.length;
    this.lastTrainLoss = trainLoss;
    this.lastNorms = acks.map((a) => ({ preClipNorm: a.preClipNorm, postClipNorm: a.postClipNorm }));
    const tokens = settings.microbatches * settings.batch * this.opts.config.seqLen;
    let valLoss: number | null = null;
    if (this.opts.evalEvery > 0 && this.iteration % this.opts.evalEvery === 0) {
      valLoss = await this.validate();
    }
    const seconds = (Date.now() - t0) / 1000;
    this.metrics.iteration.set(this.iteration);
    this.metrics.trainLoss.set(trainLoss);
    this.metrics.tokens.inc(tokens);
    this.metrics.iterationSeconds.observe(seconds);
    const rec: IterationRecord = { iteration: this.iteration, trainLoss, valLoss, seconds, time: Date.now(), tokens, norms: this.lastNorms as GradNorms[] };
    this.history.push(rec);
    if (this.history.length > 100_000) this.history.shift();
    this.log.info({ iteration: this.iteration, trainLoss: +trainLoss.toFixed(4), valLoss, seconds }, 'iteration');
    await this.onIteration(rec);
    this.broadcastStatus();
  }

  /** Validation loss through the plain pipeline path (no stash, no update). */
  async validate(): Promise<number> {
    const { settings, dataset } = this.opts;
    const batches = dataset.valBatches(this.opts.evalBatches, settings.batch);
    const losses = await this.runMicrobatches(this.iteration, batches.length, 'eval', (mb) => batches[mb]!);
    this.current = null;
    const v = losses.reduce((a, b) => a + b, 0) / losses.length;
    this.lastValLoss = v;
    this.metrics.valLoss.set(v);
    return v;
  }
}

export function taskKey(attempt: number, mb: number, dir: string, hop: number): string {
  return `${attempt}:${mb}:${dir}:${hop}`;
}
