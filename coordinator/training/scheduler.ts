/**
 * The run: drives synchronous iterations and relays tensors between stages.
 *
 * One iteration: microbatches enter the pipeline (at most a window of them at once: 1F1B's
 * warm-up depth, stages x the widest group, widened from measured hop round trips so relays
 * overlap compute on slow links, within `--max-in-flight`: in-flight-window.ts); each follows its
 * forward path hop by hop, then its backward path; tabs run queued backward tasks first. Each hop goes to one replica of its stage
 * (routing: lowest expected finish time, tab-speed.ts); a hop's backward returns to the replica
 * that ran its forward (its stash is there). When every microbatch is back at the embedding, the
 * barrier runs: the replicas of each stage combine their gradients (the sum over replicas is the
 * full gradient, gradient-reduction.ts), every stage reports its gradient norm (screened for
 * outliers before anyone steps; an outlier is traced to the relayed frames that caused it, and
 * relayed frames that jumped are screened too: relay-norms.ts), then every replica clips and takes
 * the identical Adam step.
 *
 * Losses (the recovery ladder's first rung is here): a replica lost while its stage has others
 * costs nothing but the hops it held: the coordinator kept their inputs, so they run again on a
 * sibling and the iteration completes, also when the loss comes at the barrier before its
 * gradient was combined (after that its siblings hold the combined gradient and go on without
 * it). A stage's last replica lost abandons the iteration on every tab (nothing applied) and
 * hands the stage to the recovery strategy (recovery.ts).
 */
import type { ResolvedConfig } from '../../shared/model/config.js';
import { forwardPath, swapCounter, type Hop } from '../../shared/schedule/paths.js';
import { encodeTensorFrame, FrameError } from '../../shared/protocol/index.js';
import type { OutMeta, RunStatus, TaskMeta } from '../../shared/protocol/events.js';
import { stepAckSchema, gradNormAckSchema } from '../../shared/protocol/events.js';
import { NormOutlierDetector } from '../screening/outliers.js';
import { RelayNorms } from '../screening/relay-norms.js';
import { askStage, AskError } from '../tabs/ask-stage.js';
import { checkRelayFrame, maxRelayFrameBytes } from '../screening/relay-check.js';
import { reduceGradients, type Reduction } from './gradient-reduction.js';
import type { BundleTransfer } from '../tabs/bundle-transfer.js';
import { median } from '../tabs/tab-speed.js';
import { HopTimes, inFlightWindow, type InFlightWindow } from './in-flight-window.js';
import type { TokenDataset, Batch } from '../../shared/data/dataset.js';
import type { GradNorms } from '../../shared/model/stage.js';
import { wireOf, type RunSettings } from '../../shared/run-settings.js';
import type { Volunteer } from '../tabs/registry.js';
import type { StageTable } from '../placement/stage-table.js';
import type { TabSpeeds } from '../tabs/tab-speed.js';
import type { Placement } from '../placement/placement.js';
import type { SwarmMetrics } from '../record/metrics.js';
import type { EventLog } from '../record/events-log.js';
import type { Logger } from '../record/log.js';

export interface SchedulerOptions {
  settings: RunSettings;
  config: ResolvedConfig;
  swap: boolean;
  dataset: TokenDataset;
  evalEvery: number;
  evalBatches: number;
  /** Stop after this many completed iterations (0 = run forever). */
  maxIterations: number;
  /** Give up on a barrier acknowledgement after this long (the tab is then treated as lost). */
  stepTimeoutMs: number;
  /** A tab that leaves a task unanswered this long is treated as lost (alive but not computing). */
  taskTimeoutMs: number;
  /** A gradient norm this many times the stage's recent median is quarantined. */
  outlierFactor: number;
  /** `--max-in-flight`: microbatches in flight per replica of the narrowest stage, at most (in-flight-window.ts). */
  maxInFlight: number;
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

/** Thrown inside an iteration when it cannot complete (a stage's last replica lost, a barrier failure). */
export class IterationAbandoned extends Error {
  constructor(readonly stage: number, readonly lostMicrobatches: number[], readonly why = `stage ${stage} lost`) {
    super(`iteration abandoned: ${why}`);
  }
}

/** A task may take at most this many times the swarm's median task time ... */
const TASK_DEADLINE_FACTOR = 20;
/** ... but never less than this (a WebGPU tab's first tasks compile their kernels). */
const TASK_DEADLINE_FLOOR_MS = 30_000;

interface Outstanding {
  meta: TaskMeta;
  /** The tab the task was sent to: only its answer counts. */
  to: Volunteer;
  sentAt: number;
  /** The tab had nothing outstanding when this was sent: its answer times the hop's round trip. */
  idle: boolean;
  /** A hop run again on a sibling after its replica was lost: its result is not relayed. */
  replay: boolean;
}

/** What the coordinator keeps of one hop of one microbatch while a pass runs. */
interface HopState {
  stage: number;
  /** The replica that holds (or is building) this hop's stash. */
  holder: Volunteer | null;
  /** The forward input frame(s), kept while the stage has siblings, so a replica loss can re-run the hop. */
  input: Uint8Array | null;
  targets: Uint8Array | null;
  /** The holder has the stash. */
  stashed: boolean;
  /** Backward input: a gradient frame, or the loss scale at the head. Set once it arrived. */
  gradIn: { frame: Uint8Array | null } | null;
  /** The backward ran (its dx was relayed, or the hop has none). */
  backwardDone: boolean;
  /** The backward is outstanding. */
  backwardSent: boolean;
}

type Reject = (v: Volunteer, reason: string, message: string) => void;
type Quarantine = (v: Volunteer, reason: string) => void;

export interface SchedulerDeps {
  stages: StageTable;
  speeds: TabSpeeds;
  placement: Placement;
  metrics: SwarmMetrics;
  events: EventLog;
  log: Logger;
  reject: Reject;
  quarantine: Quarantine;
  /** How a replica's accumulated gradient is pulled (in chunks). */
  transfer: BundleTransfer;
}

interface Pass {
  attempt: number;
  iteration: number;
  kind: 'train' | 'eval';
  abort: (e: Error) => void;
  onOut: (v: Volunteer, meta: OutMeta, frame: Uint8Array | null) => void;
  /** A replica of `stage` (not its last) is gone: re-run what it held on a sibling. */
  replicaLost: (v: Volunteer, stage: number) => number;
  /**
   * After the pass (at the barrier): re-runs on siblings the hops whose holder no longer serves
   * its stage; resolves with the number of hop tasks sent once they are all done.
   */
  rerunGone: () => Promise<number>;
}

/** The forward/backward pass of one iteration, over: its losses, and the pass for re-runs at the barrier. */
interface PassResult {
  losses: number[];
  pass: Pass;
}

/** A replica of the stage went away (lost, or on a blip) while the stage combined its gradients. */
class ReplicaGone extends Error {
  constructor(readonly tabs: Volunteer[]) {
    super(`replica(s) ${tabs.map((v) => v.id).join(', ')} went away`);
  }
}

/** Rounds of re-run + combine at the barrier before the iteration is given up. */
const MAX_REDUCTION_ROUNDS = 4;

export class Scheduler {
  iteration = 0;
  state: RunStatus['state'] = 'waiting';
  paused = false;
  readonly history: IterationRecord[] = [];
  lastNorms: (GradNorms | null)[];
  lastTrainLoss: number | null = null;
  lastValLoss: number | null = null;
  private outstanding = new Map<string, Outstanding>();
  private attempt = 0;
  /** Screens each stage's gradient norm against its own history. */
  readonly outliers: NormOutlierDetector;
  /** Norms of the frames each tab relayed: who inflated a stage's gradient (relay-norms.ts). */
  readonly relayNorms: RelayNorms;
  /** Per tab: compute and hop round trip, from tasks that found it idle (sizes the window). */
  readonly hopTimes = new HopTimes();
  /** The window of the last training pass (null before the first). */
  lastWindow: InFlightWindow | null = null;
  private pass: Pass | null = null;
  /** Set while the barrier of `attempt` runs: a loss aborts it. */
  private barrier: { abort: (e: Error) => void; done: Promise<void> } | null = null;
  private wake: (() => void) | null = null;
  private closed = false;
  private loopDone: Promise<void> | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  /** The strategy rung: a stage's last replica is gone (set by the coordinator: recovery). */
  onStageLost: (stage: number, opts: { distrust: boolean }) => Promise<void> = async () => {};
  /**
   * The replica rung: a replica of a stage with siblings is gone; `rerun` hops run again now, or
   * null when it was lost at the barrier (its hops run again there if its gradient was not combined yet).
   */
  onReplicaLost: (stage: number, v: Volunteer, rerun: number | null) => void = () => {};
  /** Called when a tab answers pings but leaves a task unanswered past taskTimeoutMs. */
  onUnresponsive: (v: Volunteer, why: string) => void = () => {};
  /** Called after every completed iteration. */
  onIteration: (r: IterationRecord) => Promise<void> = async () => {};
  /** How a task reaches a volunteer (the coordinator routes through socket.io rooms so a tab back from a blip gets it). */
  emitTask: (v: Volunteer, meta: TaskMeta, input: Uint8Array | null, targets: Uint8Array | null) => void = (v, m, i, t) =>
    void v.socket.emit('task', m, i, t);
  /** Sends the run status to every tab (one broadcast, set by the coordinator). */
  broadcast: (s: RunStatus) => void = () => {};
  /** Tells every tab serving a stage that the current pass is abandoned. */
  broadcastAbandon: (iteration: number) => void = () => {};

  constructor(readonly opts: SchedulerOptions, private deps: SchedulerDeps) {
    const S = this.nStages;
    this.outliers = new NormOutlierDetector(S, opts.outlierFactor);
    this.relayNorms = new RelayNorms(opts.outlierFactor);
    this.lastNorms = Array.from({ length: S }, () => null);
    deps.metrics.stages.set(S);
  }

  get nStages(): number {
    return this.opts.settings.stages;
  }

  status(): RunStatus {
    const { stages, placement } = this.deps;
    return {
      state: this.state,
      iteration: this.iteration,
      stages: this.nStages,
      needed: Math.max(0, stages.vacantCount() - placement.waitingCount()),
      trainLoss: this.lastTrainLoss,
      valLoss: this.lastValLoss,
    };
  }

  broadcastStatus(): void {
    this.broadcast(this.status());
  }

  kick(): void {
    this.wake?.();
  }

  /**
   * A tab no longer serves `stage` (the stage table already removed it). `last`: it was the
   * stage's last replica: its state was handed over (`handedOver`, the handoff rung) or the
   * recovery strategy rebuilds it; otherwise the replica rung re-runs its hops.
   */
  async tabLost(v: Volunteer, stage: number, last: boolean, how: { handedOver?: boolean; quarantined?: boolean } = {}): Promise<void> {
    this.deps.speeds.forget(v);
    this.relayNorms.forget(v);
    this.hopTimes.forget(v);
    if (!last) {
      // During a pass (including a re-run at the barrier) its hops run again on a sibling now.
      // Otherwise, at the barrier, phase 0 re-runs them if its gradient was not combined yet, and
      // later phases go on with the siblings (they hold the combined gradient).
      let rerun: number | null = null;
      if (this.pass) {
        try {
          rerun = this.pass.replicaLost(v, stage);
        } catch (e) {
          this.pass.abort(e as Error);
        }
      } else if (!this.barrier) rerun = 0;
      this.onReplicaLost(stage, v, rerun);
      this.broadcastStatus();
      return;
    }
    const lost = this.pass ? [...new Set([...this.outstanding.values()].map((o) => o.meta.mb))] : [];
    const abandon = new IterationAbandoned(stage, lost);
    this.pass?.abort(abandon);
    this.barrier?.abort(abandon);
    this.setState('recovering'); // every page hears at once that the run waits for the stage
    if (!how.handedOver) await this.onStageLost(stage, { distrust: how.quarantined ?? false });
    await this.deps.placement.fillVacancies();
    this.broadcastStatus(); // the rebuilt stage is ready now, or waits for a volunteer
    this.kick();
  }

  start(): void {
    this.loopDone = this.loop();
    this.watchdog = setInterval(() => this.checkOverdue(), Math.min(1000, Math.max(50, this.opts.taskTimeoutMs / 4)));
    this.watchdog.unref();
  }

  /** Drops the tab holding the oldest overdue task, if any. */
  private checkOverdue(): void {
    const now = Date.now();
    const deadline = this.taskDeadlineMs();
    for (const o of this.outstanding.values()) {
      if (now - o.sentAt < deadline) continue;
      this.onUnresponsive(o.to, `task ${o.meta.dir} mb ${o.meta.mb} hop ${o.meta.hop} unanswered for ${now - o.sentAt} ms`);
      return;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.watchdog) clearInterval(this.watchdog);
    this.pass?.abort(new Error('coordinator closing'));
    this.barrier?.abort(new Error('coordinator closing'));
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

  private setState(next: RunStatus['state']): void {
    if (next === this.state) return;
    this.state = next;
    this.broadcastStatus();
  }

  private async loop(): Promise<void> {
    while (!this.closed) {
      if (this.opts.maxIterations > 0 && this.iteration >= this.opts.maxIterations) {
        if (this.state !== 'paused') {
          this.state = 'paused';
          this.deps.events.add('run', `reached --max-iterations ${this.opts.maxIterations}; run finished`);
          this.broadcastStatus();
        }
        await this.sleepUntilKicked(1000);
        continue;
      }
      // Between iterations: waiting tabs join groups (they copy a replica's state now).
      await this.deps.placement.admit().catch((e: Error) => this.deps.log.warn({ err: e.message }, 'placement failed'));
      if (this.paused || !this.deps.stages.ready()) {
        // A lost stage keeps the run 'recovering' until it is served again, including while its
        // weights are still being rebuilt (it only becomes vacant once they are ready).
        this.setState(this.paused ? 'paused' : this.state === 'recovering' ? 'recovering' : 'waiting');
        await this.sleepUntilKicked(500);
        continue;
      }
      this.setState('running');
      try {
        await this.runIteration();
      } catch (e) {
        if (e instanceof IterationAbandoned) {
          this.deps.metrics.abandoned.inc();
          this.deps.events.add('run', `iteration ${this.iteration} abandoned: ${e.why} (microbatches in flight: ${e.lostMicrobatches.join(', ') || 'none'})`, {
            iteration: this.iteration,
            stage: e.stage,
            lostMicrobatches: e.lostMicrobatches,
          });
          this.broadcastAbandon(this.iteration);
        } else if (!this.closed) {
          this.deps.log.error({ err: (e as Error).message }, 'iteration failed');
          await this.sleepUntilKicked(500);
        }
      } finally {
        for (const o of this.outstanding.values()) this.deps.speeds.clearQueue(o.to);
        this.outstanding.clear();
        this.pass = null;
        this.barrier = null;
      }
    }
  }

  private batchFrames(b: Batch, iteration: number, mb: number): { tokens: Uint8Array; targets: Uint8Array } {
    const shape = [b.batch, b.seqLen];
    const h = { iteration, microbatch: mb, hop: 0, fromStage: -1, toStage: 0, dtype: 'int32' as const, shape };
    return { tokens: encodeTensorFrame({ ...h, kind: 'tokens' }, b.tokens), targets: encodeTensorFrame({ ...h, kind: 'targets' }, b.targets) };
  }

  /** Sends a task to `to` (or the replica expected to finish first). Returns the tab it went to. */
  private send(meta: TaskMeta, input: Uint8Array | null, targets: Uint8Array | null, opts: { to?: Volunteer; replay?: boolean } = {}): Volunteer {
    const { stages, speeds, metrics } = this.deps;
    const to = opts.to ?? speeds.pick(stages.replicas(meta.stage));
    if (!to || to.stage !== meta.stage) throw new IterationAbandoned(meta.stage, []);
    const idle = speeds.queued(to) === 0;
    this.outstanding.set(taskKey(meta.attempt, meta.mb, meta.dir, meta.hop), { meta, to, sentAt: Date.now(), idle, replay: opts.replay ?? false });
    speeds.sent(to);
    const bytes = (input?.byteLength ?? 0) + (targets?.byteLength ?? 0);
    metrics.relayBytes.inc({ direction: meta.dir === 'B' ? 'backward' : 'forward' }, bytes);
    this.emitTask(to, meta, input, targets);
    return to;
  }

  /**
   * Validates a task result against what was asked of this volunteer. Returns the outstanding
   * task it answers, or calls reject and returns undefined.
   */
  private checkOut(v: Volunteer, meta: OutMeta, frame: Uint8Array | null, path: Hop[]): Outstanding | undefined {
    const key = taskKey(meta.attempt, meta.mb, meta.dir, meta.hop);
    const o = this.outstanding.get(key);
    if (!o) {
      this.deps.reject(v, 'out_of_turn', `no task ${key} is outstanding`);
      return undefined;
    }
    if (o.to !== v) {
      this.deps.reject(v, 'wrong_stage', `task ${key} was sent to another tab`);
      return undefined;
    }
    const hop = path[meta.hop]!;
    const headForward = meta.dir !== 'B' && hop.segment.head;
    const expectsFrame = meta.dir === 'B' ? !hop.segment.embed : !hop.segment.head;
    if (headForward !== (meta.loss !== undefined)) {
      this.deps.reject(v, 'schema', headForward ? `task ${key} ran the head and must report a loss` : `task ${key} must not report a loss`);
      return undefined;
    }
    if (expectsFrame !== (frame !== null)) {
      this.deps.reject(v, 'schema', expectsFrame ? `task ${key} must return a tensor frame` : `task ${key} must not return a tensor frame`);
      return undefined;
    }
    let norm = 0;
    if (frame) {
      try {
        const { config, settings } = this.opts;
        const shape = [settings.batch, config.seqLen, config.dModel];
        norm = checkRelayFrame(frame, { kind: meta.dir === 'B' ? 'grad' : 'act', iteration: meta.iteration, microbatch: meta.mb, hop: meta.hop, fromStage: o.meta.stage, shape, wire: wireOf(settings) }, this.maxFrameBytes());
      } catch (e) {
        const reason = e instanceof FrameError ? e.reason : 'frame';
        this.deps.reject(v, reason, (e as Error).message);
        return undefined;
      }
    }
    // Training frames only (validation passes are not screened): a gradient goes to the hop
    // before, an activation to the hop after.
    if (frame && meta.dir !== 'E') {
      const into = path[meta.dir === 'B' ? meta.hop - 1 : meta.hop + 1]!.stage;
      this.relayNorms.record(v, o.meta.stage, meta.dir === 'B' ? 'grad' : 'act', into, norm);
    }
    this.outstanding.delete(key);
    const now = Date.now();
    this.deps.speeds.answered(v, o.sentAt, now);
    if (o.idle) this.hopTimes.record(v, now - o.sentAt, meta.computeMs);
    return o;
  }

  maxFrameBytes(): number {
    return maxRelayFrameBytes(this.opts.settings.batch, this.opts.config.seqLen, this.opts.config.dModel, wireOf(this.opts.settings));
  }

  /** Route a task result from a volunteer (called by the socket layer after schema validation). */
  handleOut(v: Volunteer, meta: OutMeta, frame: Uint8Array | null): void {
    const pass = this.pass;
    if (meta.attempt <= this.attempt && (!pass || meta.attempt < pass.attempt)) {
      // A result of an abandoned or finished attempt: late (or replayed); dropped, not an offence.
      this.deps.metrics.staleResults.inc();
      this.deps.metrics.rejected.inc({ reason: 'stale' });
      v.socket.emit('rejected', { reason: 'stale', message: `result for attempt ${meta.attempt}, which is over` });
      return;
    }
    if (!pass || meta.attempt !== pass.attempt || meta.iteration !== pass.iteration) {
      this.deps.reject(v, 'out_of_turn', `result for attempt ${meta.attempt} iteration ${meta.iteration}, which is not in progress`);
      return;
    }
    pass.onOut(v, meta, frame);
  }

  private runMicrobatches(iteration: number, count: number, kind: 'train' | 'eval', batchOf: (mb: number) => Batch): Promise<PassResult> {
    const S = this.nStages;
    const { stages } = this.deps;
    const attempt = ++this.attempt;
    const swap = kind === 'train' && this.opts.swap;
    const M = count;
    // Training: the window (1F1B depth, widened by the measured round trips). Validation keeps no
    // stash, so everything goes at once.
    const maxInFlight = kind === 'train' ? this.trainWindow(M).size : M;
    const losses: number[] = new Array(M).fill(NaN);
    const paths = Array.from({ length: M }, (_, mb) => forwardPath(swapCounter(iteration, M, mb), S, swap));
    const frames = Array.from({ length: M }, (_, mb) => this.batchFrames(batchOf(mb), iteration, mb));
    const hops: HopState[][] = paths.map((p) =>
      p.map((h) => ({ stage: h.stage, holder: null, input: null, targets: null, stashed: false, gradIn: null, backwardDone: false, backwardSent: false })),
    );
    const fdir = kind === 'train' ? 'F' : 'E';
    const metaOf = (mb: number, hop: number, dir: TaskMeta['dir'], lossScale?: number): TaskMeta => {
      const h = paths[mb]![hop]!;
      return { attempt, iteration, mb, dir, hop, stage: h.stage, segment: h.segment, ...(lossScale !== undefined ? { lossScale } : {}) };
    };
    let next = 0;
    let done = 0;
    /** Replays outstanding; the pass ends when every microbatch is done and no replay runs. */
    let replays = 0;
    return new Promise<PassResult>((resolve, reject) => {
      /** Who waits for the pass: its caller, then (at the barrier) a re-run of lost replicas' hops. */
      let settle: { resolve: () => void; reject: (e: Error) => void } = { resolve: () => resolve({ losses, pass }), reject };
      const maybeFinish = () => {
        if (done === M && replays === 0) settle.resolve();
      };
      const forward = (mb: number, hop: number, input: Uint8Array, to?: Volunteer, replay = false) => {
        const hs = hops[mb]![hop]!;
        const targets = paths[mb]![hop]!.segment.head ? frames[mb]!.targets : null;
        // Keep the hop's inputs while its stage has siblings: a lost replica's hop can run again.
        if (kind === 'train' && stages.size(hs.stage) > 1) {
          hs.input = input;
          hs.targets = targets;
        }
        hs.holder = this.send(metaOf(mb, hop, fdir), input, targets, { to, replay });
        if (replay) replays++;
      };
      const backward = (mb: number, hop: number, replay = false) => {
        const hs = hops[mb]![hop]!;
        hs.backwardSent = true;
        const lossScale = hop === paths[mb]!.length - 1 ? 1 / M : undefined;
        this.send(metaOf(mb, hop, 'B', lossScale), hs.gradIn!.frame, null, { to: hs.holder!, replay });
        if (replay) replays++;
      };
      const inject = () => {
        while (next < M && next - done < maxInFlight) {
          const mb = next++;
          forward(mb, 0, frames[mb]!.tokens);
        }
      };
      const finishMicrobatch = () => {
        done++;
        inject();
        maybeFinish();
      };
      const gradArrived = (mb: number, hop: number, frame: Uint8Array | null) => {
        const hs = hops[mb]![hop]!;
        hs.gradIn = { frame };
        // The holder may still be rebuilding the stash (a replay): the backward waits for it.
        if (hs.stashed) backward(mb, hop);
      };
      const pass: Pass = {
        attempt,
        iteration,
        kind,
        abort: (e) => settle.reject(e),
        onOut: (v, meta, frame) => {
          const path = paths[meta.mb];
          if (!path || meta.hop >= path.length || (meta.dir === 'E') !== (kind === 'eval')) {
            this.deps.reject(v, 'out_of_turn', `unexpected result ${meta.dir} mb ${meta.mb} hop ${meta.hop}`);
            return;
          }
          const o = this.checkOut(v, meta, frame, path);
          if (!o) return;
          try {
            const hs = hops[meta.mb]![meta.hop]!;
            if (o.replay) {
              replays--;
              if (meta.dir === 'B') return maybeFinish();
              // A re-run forward rebuilt the stash on the new holder; its output went downstream already.
              hs.stashed = true;
              if (hs.gradIn && !hs.backwardDone) backward(meta.mb, meta.hop, false);
              else if (hs.gradIn && hs.backwardDone) backward(meta.mb, meta.hop, true);
              return maybeFinish();
            }
            if (meta.dir === 'B') {
              hs.backwardDone = true;
              if (meta.hop === 0) return finishMicrobatch();
              return gradArrived(meta.mb, meta.hop - 1, frame);
            }
            hs.stashed = true;
            if (meta.loss !== undefined) {
              losses[meta.mb] = meta.loss;
              if (kind === 'eval') return finishMicrobatch();
              return gradArrived(meta.mb, path.length - 1, null);
            }
            if (kind === 'eval') {
              this.send(metaOf(meta.mb, meta.hop + 1, 'E'), frame, path[meta.hop + 1]!.segment.head ? frames[meta.mb]!.targets : null);
              return;
            }
            forward(meta.mb, meta.hop + 1, frame!);
          } catch (e) {
            settle.reject(e as Error);
          }
        },
        replicaLost: (v, stage) => {
          let rerun = 0;
          // A validation pass keeps no inputs: it is simply retried later.
          if (kind === 'eval') {
            if ([...this.outstanding.values()].some((o) => o.to === v)) throw new IterationAbandoned(stage, [], `a replica of stage ${stage} was lost during validation`);
            return 0;
          }
          // Tasks sent to the lost tab: send them again (forward: as they were; backward: the
          // stash is gone, so the forward runs again first).
          for (const [key, o] of [...this.outstanding]) {
            if (o.to !== v) continue;
            this.outstanding.delete(key);
            const { mb, hop, dir } = o.meta;
            const hs = hops[mb]![hop]!;
            if (o.replay) replays--;
            rerun++;
            if (dir !== 'B') {
              forward(mb, hop, hs.input!, undefined, o.replay);
            } else {
              hs.stashed = false;
              hs.backwardSent = false;
              forward(mb, hop, hs.input!, undefined, true);
            }
          }
          // Hops whose stash (and accumulated gradient) lived on the lost tab: rebuild them on a
          // sibling; a backward that already ran there runs again so its gradient is counted once.
          for (const [mb, row] of hops.entries()) {
            for (const [hop, hs] of row.entries()) {
              if (hs.holder !== v || !hs.stashed) continue;
              if (!hs.input) throw new IterationAbandoned(stage, [mb], `stage ${stage} lost the inputs of mb ${mb} hop ${hop}`);
              hs.stashed = false;
              forward(mb, hop, hs.input, undefined, true);
              rerun++;
            }
          }
          return rerun;
        },
        rerunGone: () =>
          new Promise<number>((res, rej) => {
            let rerun = 0;
            settle = { resolve: () => res(rerun), reject: rej };
            const gone = new Map<Volunteer, number>();
            for (const row of hops) for (const hs of row) if (hs.holder && hs.stashed && !stages.replicas(hs.stage).includes(hs.holder)) gone.set(hs.holder, hs.stage);
            try {
              for (const [v, stage] of gone) rerun += pass.replicaLost(v, stage);
            } catch (e) {
              return rej(e as Error);
            }
            maybeFinish();
          }),
      };
      this.pass = pass;
      try {
        inject();
      } catch (e) {
        reject(e);
      }
    });
  }

  /** The window of a training pass of M microbatches, from the current groups and measurements. */
  private trainWindow(M: number): InFlightWindow {
    const { stages, metrics } = this.deps;
    const w = inFlightWindow({
      stages: Array.from({ length: this.nStages }, (_, s) => this.hopTimes.stageTiming(stages.replicas(s))),
      microbatches: M,
      maxPerTab: this.opts.maxInFlight,
    });
    this.lastWindow = w;
    metrics.inFlightWindow.set(w.size);
    return w;
  }

  /** A promise that rejects when the barrier is aborted (a loss), and a race helper around it. */
  private openBarrier(): { race: <T>(p: Promise<T>) => Promise<T>; close: () => void } {
    let abort!: (e: Error) => void;
    let close!: () => void;
    const aborted = new Promise<never>((_, reject) => (abort = reject));
    aborted.catch(() => {});
    const done = new Promise<void>((r) => (close = r));
    this.barrier = { abort, done };
    return { race: <T>(p: Promise<T>) => Promise.race([p, aborted]), close };
  }

  /** Resolves when no barrier is in progress (a handoff waits for it: the state is then post-step). */
  async whenBarrierDone(): Promise<void> {
    while (this.barrier) await this.barrier.done;
  }

  private async runIteration(): Promise<void> {
    const it = this.iteration;
    const { settings, dataset } = this.opts;
    const t0 = Date.now();
    this.relayNorms.begin();
    const { losses, pass } = await this.runMicrobatches(it, settings.microbatches, 'train', (mb) => dataset.trainBatch(settings.seed, it, mb, settings.batch));
    this.pass = null;
    // A loss during the barrier aborts these waits at once (not after their timeouts).
    const { race, close } = this.openBarrier();
    try {
      return await this.barrierAndRecord(it, t0, losses, pass, race, () => {
        close();
        this.barrier = null;
      });
    } finally {
      close();
      this.barrier = null;
    }
  }

  private async barrierAndRecord(it: number, t0: number, losses: number[], pass: Pass, race: <T>(p: Promise<T>) => Promise<T>, endBarrier: () => void): Promise<void> {
    const { settings } = this.opts;
    const { stages, metrics, events, log } = this.deps;
    // Barrier, phase 0: the replicas of each stage combine their gradients.
    const reduced = await this.combineGradients(it, pass, race);
    for (const r of reduced) if (r) metrics.reductionBytes.inc(r.bytes);
    // From here on every replica of a stage holds the stage's full gradient: one lost now is
    // simply left out (its siblings go on); only a stage's last replica abandons the iteration.
    const groups = Array.from({ length: this.nStages }, (_, s) => {
      const g = stages.replicas(s);
      if (g.length === 0) throw new IterationAbandoned(s, []);
      return g;
    });
    // Phase 1: every stage reports its gradient norm; an outlier is quarantined and the iteration
    // abandoned before anyone steps, so a poisoned contribution is never applied.
    const norms = await race(
      Promise.all(
        groups.map(async (g, s) => {
          // The replicas hold the same gradient: ask one; if it went away, the next.
          for (const owner of g) {
            const ack = await askStage(owner, 'grad_norm', [{ iteration: it }], gradNormAckSchema, this.opts.stepTimeoutMs).catch((e: unknown) => {
              if (this.wentAway(owner, e, s)) return null;
              this.barrierFailure(owner, e, 'gradient-norm');
              throw new IterationAbandoned(s, []);
            });
            if (!ack) continue;
            if (ack.iteration !== it) {
              this.deps.reject(owner, 'step', `gradient-norm acknowledgement for iteration ${ack.iteration}, not ${it}`);
              throw new IterationAbandoned(s, []);
            }
            return ack.preClipNorm;
          }
          throw new IterationAbandoned(s, [], `no replica of stage ${s} answered for its gradient norm`);
        }),
      ),
    );
    const outlier = this.outliers.screen(norms);
    if (outlier) {
      // A stage's gradient comes from what flowed into it: a sender whose relayed frames jumped
      // inflated it, and is blamed instead of the stage's own tab.
      const upstream = this.relayNorms.blame(outlier.stage);
      if (upstream) {
        metrics.relayBlame.inc({ rule: 'upstream' });
        const why = `${upstream.reason}, which made stage ${outlier.stage}'s ${outlier.reason}`;
        if (stages.isReplica(upstream.sender)) this.deps.quarantine(upstream.sender, why);
        else events.add('run', `${upstream.sender.id} (gone) ${why}`, { volunteer: upstream.sender.id, stage: upstream.stage });
        throw new IterationAbandoned(outlier.stage, [], `stage ${outlier.stage}'s outlier gradient came from what stage ${upstream.stage} relayed`);
      }
      // Among replicas, blame the one whose own gradient was largest.
      const culprit = reduced[outlier.stage]?.largest ?? groups[outlier.stage]![0]!;
      this.deps.quarantine(culprit, outlier.reason);
      throw new IterationAbandoned(outlier.stage, [], `stage ${outlier.stage} sent an outlier gradient`);
    }
    // Relayed frames that jumped against their sender's history while its inputs did not (the
    // inflation may not show in any gradient norm, e.g. activations that a LayerNorm absorbs).
    const jump = this.relayNorms.screen();
    if (jump && stages.isReplica(jump.sender)) {
      metrics.relayBlame.inc({ rule: 'jump' });
      this.deps.quarantine(jump.sender, jump.reason);
      throw new IterationAbandoned(jump.stage, [], `stage ${jump.stage} relayed outlier ${jump.dir === 'grad' ? 'gradients' : 'activations'}`);
    }
    // Phase 2: every replica clips and steps. A stage lost now does not undo the step on the
    // others (socket order: they get the step before the abandon), so the iteration counts.
    const acks = await race(
      Promise.all(
        groups.map(async (g, s) => {
          const all = await Promise.all(
            g.map(async (owner) => {
              const ack = await askStage(owner, 'step', [{ iteration: it }], stepAckSchema, this.opts.stepTimeoutMs).catch((e: unknown) => {
                // A replica that went away is left out if a sibling steps; one that comes back
                // from a blip missed the step and no longer matches its siblings: dropped.
                if (this.wentAway(owner, e, s)) return null;
                this.barrierFailure(owner, e, 'step');
                throw new IterationAbandoned(s, []);
              });
              if (!ack) return null;
              if (ack.iteration !== it) {
                this.deps.reject(owner, 'step', `step acknowledgement for iteration ${ack.iteration}, not ${it}`);
                throw new IterationAbandoned(s, []);
              }
              owner.lastStepMs = ack.stepMs;
              return ack;
            }),
          );
          // Whoever went away missed the step: back from a blip it would be out of step with the
          // stages that took it, so it is dropped (with every replica gone, the stage is rebuilt).
          for (const [i, a] of all.entries()) if (a === null) this.onUnresponsive(g[i]!, `missed the optimizer step of iteration ${it}`);
          const stepped = all.find((a) => a !== null);
          if (!stepped) throw new IterationAbandoned(s, [], `no replica of stage ${s} took the optimizer step`);
          return stepped;
        }),
      ),
    ).catch((e: unknown) => {
      if (e instanceof IterationAbandoned) {
        this.iteration = it + 1;
        metrics.iteration.set(this.iteration);
        events.add('run', `stage ${e.stage} lost during the optimizer step of iteration ${it}: the surviving stages applied it; the run continues at iteration ${this.iteration}`);
      }
      throw e;
    });
    endBarrier();
    this.outliers.accept(norms);
    this.relayNorms.commit();
    this.iteration = it + 1;
    const trainLoss = losses.reduce((a, b) => a + b, 0) / losses.length;
    this.lastTrainLoss = trainLoss;
    this.lastNorms = acks.map((a) => ({ preClipNorm: a.preClipNorm, postClipNorm: a.postClipNorm, blockNorm: a.blockNorm }));
    const tokens = settings.microbatches * settings.batch * this.opts.config.seqLen;
    let valLoss: number | null = null;
    if (this.opts.evalEvery > 0 && this.iteration % this.opts.evalEvery === 0) {
      valLoss = await this.validate().catch((e: Error) => {
        log.warn({ err: e.message }, 'validation failed');
        return null;
      });
    }
    const seconds = (Date.now() - t0) / 1000;
    metrics.iteration.set(this.iteration);
    metrics.trainLoss.set(trainLoss);
    metrics.tokens.inc(tokens);
    metrics.iterationSeconds.observe(seconds);
    const rec: IterationRecord = { iteration: this.iteration, trainLoss, valLoss, seconds, time: Date.now(), tokens, norms: this.lastNorms as GradNorms[] };
    this.history.push(rec);
    if (this.history.length > 100_000) this.history.shift();
    log.info({ iteration: this.iteration, trainLoss: +trainLoss.toFixed(4), valLoss, seconds }, 'iteration');
    await this.onIteration(rec);
    await this.deps.placement.rebalance(this.iteration);
    this.broadcastStatus();
  }

  /**
   * Barrier, phase 0: each stage with several replicas combines their gradients (the sum over
   * replicas is the stage's full gradient). A replica that went away before its gradient was
   * combined: the hops it held run again on its siblings (the coordinator kept their inputs) and
   * the stage combines again, so nothing of the iteration is thrown away. A replica that missed
   * the combined gradient is dropped (it would step with a partial one).
   */
  private async combineGradients(it: number, pass: Pass, race: <T>(p: Promise<T>) => Promise<T>): Promise<(Reduction | null)[]> {
    const { stages, events } = this.deps;
    const reduced: (Reduction | null)[] = new Array<Reduction | null>(this.nStages).fill(null);
    let todo = Array.from({ length: this.nStages }, (_, s) => s);
    for (let round = 0; todo.length > 0; round++) {
      this.pass = pass;
      const rerun = await race(pass.rerunGone()).finally(() => (this.pass = null));
      if (rerun > 0) events.add('recovery', `iteration ${it}: ${rerun} hop task(s) of lost replica(s) ran again on their siblings at the barrier`, { iteration: it, rerun });
      const results = await race(Promise.allSettled(todo.map((s) => this.combineStage(s, it))));
      const retry: number[] = [];
      for (const [i, r] of results.entries()) {
        const s = todo[i]!;
        if (r.status === 'fulfilled') {
          reduced[s] = r.value;
          for (const v of r.value?.missed ?? []) this.onUnresponsive(v, `did not take the combined gradient of iteration ${it}`);
        } else if (r.reason instanceof ReplicaGone && round + 1 < MAX_REDUCTION_ROUNDS) {
          // Lost (its hops run again next round) or on a blip (it answers again when back).
          await race(this.settled(r.reason.tabs, s));
          retry.push(s);
        } else if (r.reason instanceof IterationAbandoned) {
          throw r.reason;
        } else {
          throw new IterationAbandoned(s, [], `stage ${s} could not combine its replicas' gradients: ${(r.reason as Error).message}`);
        }
      }
      todo = retry;
    }
    return reduced;
  }

  /** One stage's reduction (null: a single replica, which holds the whole gradient). */
  private async combineStage(s: number, it: number): Promise<Reduction | null> {
    const g = this.deps.stages.replicas(s);
    if (g.length === 0) throw new IterationAbandoned(s, []);
    if (g.length === 1) return null;
    try {
      return await reduceGradients(g, s, it, this.opts.config, this.opts.stepTimeoutMs, this.deps.reject, this.deps.transfer);
    } catch (e) {
      const away = g.filter((v) => !v.socket.connected || !this.deps.stages.replicas(s).includes(v));
      if (away.length > 0) throw new ReplicaGone(away);
      throw e;
    }
  }

  /** Waits (at most the step timeout) until each tab is back on its socket or no longer serves `s`. */
  private async settled(tabs: Volunteer[], s: number): Promise<void> {
    const t0 = Date.now();
    const isSettled = () => tabs.every((v) => v.socket.connected || !this.deps.stages.replicas(s).includes(v));
    while (!isSettled() && Date.now() - t0 < this.opts.stepTimeoutMs) await new Promise((r) => setTimeout(r, 20));
  }

  /** A barrier request failed because the tab went away while its stage has other replicas. */
  private wentAway(v: Volunteer, e: unknown, s: number): boolean {
    if (!(e instanceof AskError) || e.failure !== 'disconnected') return false;
    return this.deps.stages.replicas(s).some((r) => r !== v);
  }

  /**
   * A barrier request a tab failed: a bad reply is an offence; a tab that does not answer within
   * the step timeout is treated as lost (it computes its tasks but would hold every barrier).
   */
  private barrierFailure(owner: Volunteer, e: unknown, what: string): void {
    if (!(e instanceof AskError)) return;
    if (e.failure === 'invalid') this.deps.reject(owner, 'step', `bad ${what} acknowledgement: ${e.message}`);
    else if (e.failure === 'timeout') {
      this.deps.metrics.rejected.inc({ reason: 'silent' });
      this.onUnresponsive(owner, `no ${what} acknowledgement within ${this.opts.stepTimeoutMs} ms`);
    }
  }

  /**
   * How long a task may stay unanswered: the configured timeout, but no more than a multiple of
   * the swarm's median task time (with a floor for first-iteration compilation), so a tab that
   * answers every task just under the fixed timeout cannot hold the run at that pace.
   */
  private taskDeadlineMs(): number {
    const times = this.deps.stages.allReplicas().map((v) => this.deps.speeds.taskMs(v)).filter((t): t is number => t !== null);
    const med = median(times);
    return med === null ? this.opts.taskTimeoutMs : Math.min(this.opts.taskTimeoutMs, Math.max(TASK_DEADLINE_FLOOR_MS, TASK_DEADLINE_FACTOR * med));
  }

  /** Validation loss through the plain pipeline path (no stash, no update). */
  async validate(): Promise<number> {
    const { settings, dataset } = this.opts;
    const batches = dataset.valBatches(this.opts.evalBatches, settings.batch);
    try {
      const { losses } = await this.runMicrobatches(this.iteration, batches.length, 'eval', (mb) => batches[mb]!);
      const v = losses.reduce((a, b) => a + b, 0) / losses.length;
      this.lastValLoss = v;
      this.deps.metrics.valLoss.set(v);
      return v;
    } finally {
      this.pass = null;
      this.outstanding.clear();
    }
  }
}

export function taskKey(attempt: number, mb: number, dir: string, hop: number): string {
  return `${attempt}:${mb}:${dir}:${hop}`;
}

