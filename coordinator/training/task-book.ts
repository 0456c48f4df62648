/**
 * The tasks of one pipeline pass that are out with tabs: sending them (to the replica expected to
 * finish first, unless a tab is named), and checking every answer against what was asked of that
 * tab before anything of it is used: the task is outstanding, for this tab, the loss and the frame
 * are where the path says, and the frame passes the relay check (encoding, header, shape, finite
 * values; its norm comes back for screening).
 */
import type { Hop } from '../../shared/schedule/paths.js';
import type { OutMeta, TaskMeta } from '../../shared/protocol/events.js';
import type { InputFrom } from '../../shared/protocol/p2p-messages.js';
import type { ExpectedHopFrame } from '../../shared/protocol/hop-frame-check.js';
import { checkPeerReports } from './peer-reports.js';
import type { WireEncoding } from '../../shared/protocol/wire-encoding.js';
import { FrameError } from '../../shared/protocol/index.js';
import { checkRelayFrame, type ExpectedFrame } from '../screening/relay-check.js';
import type { Volunteer } from '../tabs/registry.js';
import type { StageTable } from '../placement/stage-table.js';
import type { TabSpeeds } from '../tabs/tab-speed.js';
import type { SwarmMetrics } from '../record/metrics.js';
import type { HopTimes } from './in-flight-window.js';
import { IterationAbandoned } from './iteration-abandoned.js';
import type { AnswerTimes } from './answer-times.js';

export interface Task {
  meta: TaskMeta;
  /** The tab the task was sent to: only its answer counts. */
  to: Volunteer;
  sentAt: number;
  /** The tab had nothing outstanding when this was sent: its answer times the hop's round trip. */
  idle: boolean;
  /** A hop run again on a sibling after its replica was lost: its result is not relayed. */
  replay: boolean;
}

/** How a task reaches a tab (the coordinator routes through socket.io rooms so a tab back from a blip gets it). */
export interface TaskSender {
  send(v: Volunteer, meta: TaskMeta, input: Uint8Array | null, targets: Uint8Array | null): void;
}

export type Reject = (v: Volunteer, reason: string, message: string) => void;

/** What every relayed frame of the run must be. */
export interface FrameRules {
  /** `[batch, seq, d]` */
  shape: number[];
  wire: WireEncoding;
  maxBytes: number;
}

export interface TaskBookDeps {
  stages: StageTable;
  speeds: TabSpeeds;
  hopTimes: HopTimes;
  metrics: SwarmMetrics;
  sender: TaskSender;
  reject: Reject;
  frames: FrameRules;
  /** Recent task answer times (the watchdog's deadline adapts to them), recorded under `timesKey`. */
  times: AnswerTimes;
  timesKey: string;
  /** Replicas that get no task of this pass (a suspect under audit, own-gradient-audit.ts). */
  skip?: (v: Volunteer) => boolean;
}

export function taskKey(attempt: number, mb: number, dir: string, hop: number): string {
  return `${attempt}:${mb}:${dir}:${hop}`;
}

export class TaskBook {
  private tasks = new Map<string, Task>();

  constructor(private deps: TaskBookDeps) {}

  /** The replica of `stage` a task would go to now (the one expected to finish first). */
  pick(stage: number): Volunteer | undefined {
    return this.deps.speeds.pick(this.eligible(stage));
  }

  /** The replicas of `stage` a task may go to. */
  private eligible(stage: number): Volunteer[] {
    const all = this.deps.stages.replicas(stage);
    const skip = this.deps.skip;
    return skip ? all.filter((v) => !skip(v)) : all;
  }

  /** What a receiver must find: the frame `from` sent for hop `hop` of `fromStage`, peer to peer. */
  peerInput(from: Volunteer, kind: 'act' | 'grad', hop: number, fromStage: number): InputFrom {
    const { shape, maxBytes } = this.deps.frames;
    return { peer: from.id, kind, hop, fromStage, shape: [...shape], maxBytes };
  }

  /** What the frame a task took from its peer must be (its receiving stage included). */
  peerFrame(from: InputFrom, iteration: number, mb: number, toStage: number): ExpectedHopFrame {
    return { kind: from.kind, iteration, microbatch: mb, hop: from.hop, fromStage: from.fromStage, toStage, shape: from.shape, wire: this.deps.frames.wire };
  }

  /** The norm of a frame the coordinator relays (a task's answer, or a late p2p fallback); throws a FrameError unless it is the run's frame. */
  relayFrameNorm(frame: Uint8Array, want: Omit<ExpectedFrame, 'shape' | 'wire'>): number {
    const { shape, wire, maxBytes } = this.deps.frames;
    return checkRelayFrame(frame, { ...want, shape, wire }, maxBytes);
  }

  /** Sends a task to `to` (or the replica expected to finish first). Returns the tab it went to. */
  send(meta: TaskMeta, input: Uint8Array | null, targets: Uint8Array | null, opts: { to?: Volunteer; replay?: boolean } = {}): Volunteer {
    const { stages, speeds, metrics } = this.deps;
    const to = opts.to ?? speeds.pick(this.eligible(meta.stage));
    if (!to || to.stage !== meta.stage) throw new IterationAbandoned(meta.stage, []);
    const idle = speeds.queued(to) === 0;
    this.tasks.set(taskKey(meta.attempt, meta.mb, meta.dir, meta.hop), { meta, to, sentAt: Date.now(), idle, replay: opts.replay ?? false });
    speeds.sent(to);
    // Activations and gradients by direction; the batch's tokens and targets (sent, not relayed) apart.
    const tokens = meta.dir !== 'B' && meta.hop === 0;
    const frameBytes = tokens ? 0 : (input?.byteLength ?? 0);
    if (frameBytes > 0) metrics.relayBytes.inc({ direction: meta.dir === 'B' ? 'backward' : 'forward' }, frameBytes);
    const data = (tokens ? (input?.byteLength ?? 0) : 0) + (targets?.byteLength ?? 0);
    if (data > 0) metrics.relayBytes.inc({ direction: 'data' }, data);
    this.deps.sender.send(to, meta, input, targets);
    return to;
  }

  /**
   * Checks a task result against what was asked of this tab. Returns the task it answers (now no
   * longer outstanding) and its frame's norm, or rejects the message and returns undefined.
   */
  answer(v: Volunteer, meta: OutMeta, frame: Uint8Array | null, path: Hop[]): { task: Task; norm: number } | undefined {
    const { reject } = this.deps;
    const key = taskKey(meta.attempt, meta.mb, meta.dir, meta.hop);
    const task = this.tasks.get(key);
    if (!task) return void reject(v, 'out_of_turn', `no task ${key} is outstanding`);
    if (task.to !== v) return void reject(v, 'wrong_stage', `task ${key} was sent to another tab`);
    const hop = path[meta.hop]!;
    const headForward = meta.dir !== 'B' && hop.segment.head;
    const expectsFrame = meta.dir === 'B' ? !hop.segment.embed : !hop.segment.head;
    if (headForward !== (meta.loss !== undefined)) {
      return void reject(v, 'schema', headForward ? `task ${key} ran the head and must report a loss` : `task ${key} must not report a loss`);
    }
    const peerIssue = checkPeerReports(task.meta, meta, frame);
    if (peerIssue) return void reject(v, 'p2p', `task ${key}: ${peerIssue}`);
    // The task's peer input was refused: it did not run (the pass abandons, the audit judges).
    if (meta.refused) {
      this.tasks.delete(key);
      return { task, norm: 0 };
    }
    if (expectsFrame !== (frame !== null || meta.sent !== undefined)) {
      return void reject(v, 'schema', expectsFrame ? `task ${key} must return a tensor frame` : `task ${key} must not return a tensor frame`);
    }
    let norm = 0;
    if (frame) {
      try {
        norm = this.relayFrameNorm(frame, { kind: meta.dir === 'B' ? 'grad' : 'act', iteration: meta.iteration, microbatch: meta.mb, hop: meta.hop, fromStage: task.meta.stage });
      } catch (e) {
        return void reject(v, e instanceof FrameError ? e.reason : 'frame', (e as Error).message);
      }
    }
    this.tasks.delete(key);
    const now = Date.now();
    this.deps.speeds.answered(v, task.sentAt, now);
    this.deps.times.record(this.deps.timesKey, now - task.sentAt, v);
    if (task.idle) this.deps.hopTimes.record(v, now - task.sentAt, meta.computeMs);
    return { task, norm };
  }

  /** Takes back the tasks sent to `v` (it was lost): they are no longer outstanding. */
  withdraw(v: Volunteer): Task[] {
    const out: Task[] = [];
    for (const [key, t] of [...this.tasks]) {
      if (t.to !== v) continue;
      this.tasks.delete(key);
      out.push(t);
    }
    return out;
  }

  /** Whether some task is out with `v`. */
  holds(v: Volunteer): boolean {
    for (const t of this.tasks.values()) if (t.to === v) return true;
    return false;
  }

  /** The oldest task unanswered for at least its deadline (`deadlineOf(task, timesKey)`), if any. */
  overdue(deadlineOf: (t: Task, timesKey: string) => number, now = Date.now()): Task | undefined {
    for (const t of this.tasks.values()) if (now - t.sentAt >= deadlineOf(t, this.deps.timesKey)) return t;
    return undefined;
  }

  /** Microbatches with a task out. */
  microbatches(): number[] {
    return [...new Set([...this.tasks.values()].map((t) => t.meta.mb))];
  }

  /** The pass is over: nothing is outstanding, and the tabs' queues are empty again. */
  clear(): void {
    for (const t of this.tasks.values()) this.deps.speeds.clearQueue(t.to);
    this.tasks.clear();
  }
}
