/**
 * One pipeline pass: M microbatches through the stages and back (training) or forward only
 * (validation), as its PassKind says. Each microbatch follows its path hop by hop; a hop goes to
 * one replica of its stage (the TaskBook routes it to the one expected to finish first), and a
 * hop's backward returns to the replica that ran its forward (its stash is there). At most a
 * window of microbatches is in flight.
 *
 * The pass keeps each hop's inputs while its stage has siblings, so a lost replica's hops run again
 * on a sibling (the replica rung: docs/recovery.md#the-recovery-ladder); it is kept until the
 * barrier is done, which re-runs the hops of replicas lost there.
 */
import type { Hop } from '../../shared/schedule/paths.js';
import { encodeTensorFrame } from '../../shared/protocol/index.js';
import type { OutMeta, TaskMeta } from '../../shared/protocol/events.js';
import type { InputFrom } from '../../shared/protocol/p2p-messages.js';
import type { LateFallback } from '../../shared/protocol/late-fallback.js';
import { FrameError } from '../../shared/protocol/frame-error.js';
import type { Batch } from '../../shared/data/dataset.js';
import type { Volunteer } from '../tabs/registry.js';
import type { StageTable } from '../placement/stage-table.js';
import type { Screening } from '../screening/screening.js';
import type { PassControl, PassKind } from './pass-kind.js';
import type { Reject, Task, TaskBook } from './task-book.js';
import { IterationAbandoned } from './iteration-abandoned.js';
import type { P2pRoutes } from './p2p-routes.js';
import type { P2pAudit } from '../screening/p2p-audit.js';
import { PeerHandoffs } from './peer-handoffs.js';

/** What the pass keeps of one hop of one microbatch. */
interface HopState {
  stage: number;
  /** The replica that holds (or is building) this hop's stash. */
  holder: Volunteer | null;
  /** The forward input frame(s), kept while the stage has siblings, so a replica loss can re-run the hop. */
  input: Uint8Array | null;
  targets: Uint8Array | null;
  /** The holder has the stash. */
  stashed: boolean;
  /** Backward input: a gradient frame, or the loss scale at the head, or a frame sent peer to peer (`from`). Set once it arrived. */
  gradIn: { frame: Uint8Array | null; from?: InputFrom } | null;
  /** `--transport p2p|auto`: the tab this hop's forward output goes to peer to peer. */
  sendTo?: Volunteer;
  /** The backward ran (its dx was relayed, or the hop has none). */
  backwardDone: boolean;
}

export interface PassDeps {
  stages: StageTable;
  book: TaskBook;
  screening: Screening;
  reject: Reject;
  /** `--transport p2p|auto`: which outputs go peer to peer (absent: every frame is relayed). */
  p2p?: P2pRoutes;
  /** This pass's checks of peer-to-peer frames (with `p2p`). */
  audit?: P2pAudit;
}

type Settle = { resolve: () => void; reject: (e: Error) => void };

function batchFrames(b: Batch, iteration: number, mb: number): { tokens: Uint8Array; targets: Uint8Array } {
  const shape = [b.batch, b.seqLen];
  const h = { iteration, microbatch: mb, hop: 0, fromStage: -1, toStage: 0, dtype: 'int32' as const, shape };
  return { tokens: encodeTensorFrame({ ...h, kind: 'tokens' }, b.tokens), targets: encodeTensorFrame({ ...h, kind: 'targets' }, b.targets) };
}

export class PipelinePass implements PassControl {
  private readonly M: number;
  private readonly window: number;
  private readonly paths: Hop[][];
  private readonly frames: { tokens: Uint8Array; targets: Uint8Array }[];
  private readonly hops: HopState[][];
  /** Tasks whose output went peer to peer, by `mb:hop:kind` (this pass only). */
  private readonly sentPeer = new Map<string, TaskMeta>();
  /** Frames reported sent peer to peer, until their receiver answers (peer-handoffs.ts). */
  private readonly handoffs = new PeerHandoffs();
  private readonly losses: number[];
  /** Microbatches injected, and finished. */
  private next = 0;
  private done = 0;
  /** Replays outstanding; the pass (or a re-run at the barrier) ends when every microbatch is done and no replay runs. */
  private replays = 0;
  /** Who waits for the pass: its caller, then (at the barrier) a re-run of lost replicas' hops. */
  private settle: Settle = { resolve: () => {}, reject: () => {} };

  constructor(
    readonly attempt: number,
    readonly iteration: number,
    readonly kind: PassKind,
    batches: Batch[],
    nStages: number,
    private deps: PassDeps,
  ) {
    const M = (this.M = batches.length);
    this.window = kind.window(M);
    this.losses = new Array<number>(M).fill(NaN);
    this.paths = Array.from({ length: M }, (_, mb) => kind.path(iteration, M, mb, nStages));
    this.frames = batches.map((b, mb) => batchFrames(b, iteration, mb));
    this.hops = this.paths.map((p) =>
      p.map((h) => ({ stage: h.stage, holder: null, input: null, targets: null, stashed: false, gradIn: null, backwardDone: false })),
    );
  }

  /** Runs the pass; resolves with each microbatch's loss. */
  run(): Promise<number[]> {
    return new Promise<number[]>((resolve, reject) => {
      this.settle = { resolve: () => resolve(this.losses), reject };
      try {
        this.inject();
      } catch (e) {
        reject(e as Error);
      }
    });
  }

  /** Gives up the pass (a stage's last replica lost, the coordinator closing). */
  abort(e: Error): void {
    this.settle.reject(e);
  }

  /** The oldest task unanswered past its deadline (the watchdog drops its tab). */
  overdue(deadlineOf: (t: Task, timesKey: string) => number, now = Date.now()): Task | undefined {
    return this.deps.book.overdue(deadlineOf, now);
  }

  /** The pass is over: nothing stays outstanding. */
  close(): void {
    this.deps.book.clear();
  }

  /** Microbatches with a task out (for the abandon event). */
  inFlight(): number[] {
    return this.deps.book.microbatches();
  }

  private metaOf(mb: number, hop: number, dir: TaskMeta['dir'], lossScale?: number): TaskMeta {
    const h = this.paths[mb]![hop]!;
    return { attempt: this.attempt, iteration: this.iteration, mb, dir, hop, stage: h.stage, segment: h.segment, ...(lossScale !== undefined ? { lossScale } : {}) };
  }

  private maybeFinish(): void {
    if (this.done === this.M && this.replays === 0) this.settle.resolve();
  }

  /** The tab that gets `from`'s output for `stage` peer to peer, or undefined (relay). */
  private peerOut(from: Volunteer | undefined, stage: number | undefined): Volunteer | undefined {
    if (!this.deps.p2p || !from || stage === undefined) return undefined;
    return this.deps.p2p.receiverFor(from, stage) ?? undefined;
  }

  private forward(mb: number, hop: number, input: Uint8Array | null, to?: Volunteer, replay = false, from?: InputFrom): void {
    const hs = this.hops[mb]![hop]!;
    const path = this.paths[mb]!;
    // A replay's output is not passed on, so it never goes peer to peer.
    if (this.deps.p2p?.enabled && !replay) to ??= this.deps.book.pick(hs.stage);
    hs.sendTo = replay || path[hop]!.segment.head ? undefined : this.peerOut(to, path[hop + 1]?.stage);
    const targets = this.paths[mb]![hop]!.segment.head ? this.frames[mb]!.targets : null;
    // Keep the hop's inputs while its stage has siblings: a lost replica's hop can run again.
    if (this.kind.keepsInputs && this.deps.stages.size(hs.stage) > 1) {
      hs.input = input;
      hs.targets = targets;
    }
    const meta: TaskMeta = { ...this.metaOf(mb, hop, this.kind.forwardDir), ...(hs.sendTo ? { sendTo: { peer: hs.sendTo.id, stage: path[hop + 1]!.stage } } : {}), ...(from ? { inputFrom: from } : {}) };
    hs.holder = this.deps.book.send(meta, input, targets, { to, replay });
    if (replay) this.replays++;
  }

  private backward(mb: number, hop: number, replay = false): void {
    const hs = this.hops[mb]![hop]!;
    const lossScale = hop === this.paths[mb]!.length - 1 ? 1 / this.M : undefined;
    // The gradient goes to the tab holding the previous hop's stash: peer to peer when that is its stage's only replica.
    const prev = hop > 0 && !this.paths[mb]![hop]!.segment.embed && !replay ? this.hops[mb]![hop - 1]!.holder : null;
    const sendTo = prev && this.peerOut(hs.holder!, this.paths[mb]![hop - 1]!.stage) === prev ? { sendTo: { peer: prev.id, stage: this.paths[mb]![hop - 1]!.stage } } : {};
    const from = hs.gradIn!.from ? { inputFrom: hs.gradIn!.from } : {};
    this.deps.book.send({ ...this.metaOf(mb, hop, 'B', lossScale), ...sendTo, ...from }, hs.gradIn!.frame, null, { to: hs.holder!, replay });
    if (replay) this.replays++;
  }

  private inject(): void {
    while (this.next < this.M && this.next - this.done < this.window) {
      const mb = this.next++;
      this.forward(mb, 0, this.frames[mb]!.tokens);
    }
  }

  finishMicrobatch(): void {
    this.done++;
    this.inject();
    this.maybeFinish();
  }

  startBackward(mb: number): void {
    this.gradArrived(mb, this.paths[mb]!.length - 1, null);
  }

  holds(v: Volunteer): boolean {
    return this.deps.book.holds(v);
  }

  private gradArrived(mb: number, hop: number, frame: Uint8Array | null, from?: InputFrom): void {
    const hs = this.hops[mb]![hop]!;
    hs.gradIn = from ? { frame, from } : { frame };
    // The holder may still be rebuilding the stash (a replay): the backward waits for it.
    if (hs.stashed) this.backward(mb, hop);
  }

  /** A result of this pass from `v` (already schema-checked by the connection). */
  onOut(v: Volunteer, meta: OutMeta, frame: Uint8Array | null): void {
    const path = this.paths[meta.mb];
    if (!path || meta.hop >= path.length || !this.kind.accepts(meta.dir)) {
      this.deps.reject(v, 'out_of_turn', `unexpected result ${meta.dir} mb ${meta.mb} hop ${meta.hop}`);
      return;
    }
    const answered = this.deps.book.answer(v, meta, frame, path);
    if (!answered) return;
    const { task, norm } = answered;
    // Training frames are screened: a gradient goes to the hop before, an activation to the hop after.
    if (frame && this.kind.keepsInputs) {
      const into = path[meta.dir === 'B' ? meta.hop - 1 : meta.hop + 1]!.stage;
      this.deps.screening.recordFrame(v, task.meta.stage, meta.dir === 'B' ? 'grad' : 'act', into, norm, meta.hop, this.evidenceOf(task.meta, frame));
    }
    // A frame that came peer to peer is screened as its receiver measured it, under its sender.
    const from = task.meta.inputFrom;
    const sender = from ? this.hops[meta.mb]![from.hop]!.holder : null;
    // A frame that came through the relay after all (a late fallback) was screened when it arrived here.
    const handoff = from && (meta.got || meta.refused) ? this.handoffs.answered(from.kind, meta.mb, from.hop) : undefined;
    if (from && meta.got && handoff && !handoff.relayed) this.deps.p2p?.took(handoff.sender, v, from.kind, handoff.bytes);
    if (from && meta.got && sender && this.kind.keepsInputs && !handoff?.relayed) {
      const sent = this.sentPeer.get(`${meta.mb}:${from.hop}:${from.kind}`);
      this.deps.screening.recordFrame(sender, from.fromStage, from.kind, task.meta.stage, meta.got.norm, from.hop, sent ? this.evidenceOf(sent, null) : undefined);
    }
    // Sent peer to peer: its task is kept so the receiver's report can carry audit evidence.
    if (meta.sent && this.kind.keepsInputs) this.sentPeer.set(`${meta.mb}:${meta.hop}:${meta.dir === 'B' ? 'grad' : 'act'}`, task.meta);
    const audit = this.deps.audit;
    if (meta.sent) audit?.onSent(v, { kind: meta.dir === 'B' ? 'grad' : 'act', iteration: meta.iteration, microbatch: meta.mb, hop: meta.hop }, meta.sent.digest);
    if (from && meta.got) audit?.onGot(v, this.deps.book.peerFrame(from, meta.iteration, meta.mb, task.meta.stage), meta.got);
    if (from && meta.refused) {
      audit?.onRefused(v, this.deps.book.peerFrame(from, meta.iteration, meta.mb, task.meta.stage), meta.refused);
      return this.settle.reject(new IterationAbandoned(task.meta.stage, [meta.mb], `stage ${task.meta.stage} refused the ${from.kind} frame of mb ${meta.mb} from ${from.peer} (${meta.refused.reason})`));
    }
    // Where this result's frame went: to its peer, or (a fallback) here with the message.
    const peer = task.meta.sendTo ? (meta.dir === 'B' ? this.hops[meta.mb]![meta.hop - 1]!.holder : this.hops[meta.mb]![meta.hop]!.sendTo) ?? null : null;
    if (this.deps.p2p && task.meta.sendTo) {
      if (meta.sent && peer) this.handoffs.reported(meta.dir === 'B' ? 'grad' : 'act', meta.mb, meta.hop, v, peer, meta.sent.bytes);
      else if (meta.fallback) this.deps.p2p.fellBack(v, peer, meta.fallback);
    }
    const peerFrame = meta.sent ? this.deps.book.peerInput(v, meta.dir === 'B' ? 'grad' : 'act', meta.hop, task.meta.stage) : undefined;
    try {
      const hs = this.hops[meta.mb]![meta.hop]!;
      if (task.replay) {
        this.replays--;
        if (meta.dir === 'B') return this.maybeFinish();
        // A re-run forward rebuilt the stash on the new holder; its output went downstream already.
        hs.stashed = true;
        if (hs.gradIn) this.backward(meta.mb, meta.hop, hs.backwardDone);
        return this.maybeFinish();
      }
      if (meta.dir === 'B') {
        hs.backwardDone = true;
        if (meta.hop === 0) return this.finishMicrobatch();
        return this.gradArrived(meta.mb, meta.hop - 1, frame, peerFrame);
      }
      hs.stashed = true;
      if (meta.loss !== undefined) {
        this.losses[meta.mb] = meta.loss;
        return this.kind.afterLoss(this, meta.mb);
      }
      this.forward(meta.mb, meta.hop + 1, peerFrame ? null : frame!, peer ?? undefined, false, peerFrame);
    } catch (e) {
      this.settle.reject(e as Error);
    }
  }

  /**
   * `v`'s link broke after it reported a frame sent (`p2p_fallback`, schema-checked): the frame is
   * checked and screened as a relayed one and goes to the receiver's waiting task, unless the
   * receiver took it from the link already (docs/p2p.md#the-early-report).
   */
  onLateFallback(v: Volunteer, info: LateFallback, frame: Uint8Array): void {
    const kind = info.dir === 'B' ? 'grad' : 'act';
    const path = this.paths[info.mb];
    if (!path || info.hop >= path.length || !this.kind.accepts(info.dir)) return this.deps.reject(v, 'out_of_turn', `unexpected p2p_fallback ${info.dir} mb ${info.mb} hop ${info.hop}`);
    const r = this.handoffs.fellBack(v, kind, info.mb, info.hop);
    if ('error' in r) return this.deps.reject(v, 'p2p', `p2p_fallback: ${r.error}`);
    if (!r.relay) return;
    const { receiver } = r.relay;
    const stage = path[info.hop]!.stage;
    const into = path[kind === 'grad' ? info.hop - 1 : info.hop + 1]!.stage;
    let norm: number;
    try {
      norm = this.deps.book.relayFrameNorm(frame, { kind, iteration: this.iteration, microbatch: info.mb, hop: info.hop, fromStage: stage });
    } catch (e) {
      this.deps.reject(v, e instanceof FrameError ? e.reason : 'frame', `p2p_fallback: ${(e as Error).message}`);
      return this.settle.reject(new IterationAbandoned(into, [info.mb], `stage ${stage} fell back with a bad ${kind} frame of mb ${info.mb}`));
    }
    this.deps.p2p?.fellBack(v, receiver, info.reason);
    if (this.kind.keepsInputs) {
      const sent = this.sentPeer.get(`${info.mb}:${info.hop}:${kind}`);
      this.deps.screening.recordFrame(v, stage, kind, into, norm, info.hop, sent ? this.evidenceOf(sent, frame) : undefined);
    }
    this.deps.p2p?.relayFrame(receiver, { from: v.id, kind, attempt: this.attempt, iteration: this.iteration, mb: info.mb, hop: info.hop }, frame);
  }

  /** The hop's inputs and `output`, for an audit of a suspicion (hop-evidence.ts); null where they were not kept (no siblings). */
  private evidenceOf(meta: TaskMeta, output: Uint8Array | null) {
    const hs = this.hops[meta.mb]![meta.hop]!;
    if (!hs.input) return undefined;
    // The audit's re-run goes to the coordinator, never to a peer: no p2p routing in its task.
    const { lossScale, sendTo: _to, inputFrom: _from, ...forward } = meta;
    return { forward: { ...forward, dir: this.kind.forwardDir }, input: hs.input, targets: hs.targets, gradIn: meta.dir === 'B' ? (hs.gradIn?.frame ?? null) : null, ...(lossScale !== undefined ? { lossScale } : {}), output };
  }

  /** A replica (not its stage's last) is gone mid-pass: what it held runs again, as the kind says. */
  replicaLost(v: Volunteer, stage: number): number {
    return this.kind.replicaLost(this, v, stage);
  }

  rerunHopsOf(v: Volunteer, stage: number): number {
    let rerun = 0;
    // Tasks sent to the lost tab: send them again (forward: as they were; backward: the stash is
    // gone, so the forward runs again first).
    for (const t of this.deps.book.withdraw(v)) {
      const { mb, hop, dir } = t.meta;
      const hs = this.hops[mb]![hop]!;
      if (t.replay) this.replays--;
      rerun++;
      if (dir !== 'B') {
        this.forward(mb, hop, hs.input!, undefined, t.replay);
      } else {
        hs.stashed = false;
        this.forward(mb, hop, hs.input!, undefined, true);
      }
    }
    // Hops whose stash (and accumulated gradient) lived on the lost tab: rebuild them on a
    // sibling; a backward that already ran there runs again so its gradient is counted once.
    for (const [mb, row] of this.hops.entries()) {
      for (const [hop, hs] of row.entries()) {
        if (hs.holder !== v || !hs.stashed) continue;
        if (!hs.input) throw new IterationAbandoned(stage, [mb], `stage ${stage} lost the inputs of mb ${mb} hop ${hop}`);
        hs.stashed = false;
        this.forward(mb, hop, hs.input, undefined, true);
        rerun++;
      }
    }
    return rerun;
  }

  /**
   * At the barrier: re-runs on siblings the hops whose holder no longer serves its stage;
   * resolves with the number of hop tasks sent once they are all done.
   */
  rerunGone(): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      let rerun = 0;
      this.settle = { resolve: () => resolve(rerun), reject };
      const gone = new Map<Volunteer, number>();
      for (const row of this.hops) for (const hs of row) if (hs.holder && hs.stashed && !this.deps.stages.replicas(hs.stage).includes(hs.holder)) gone.set(hs.holder, hs.stage);
      try {
        for (const [v, stage] of gone) rerun += this.replicaLost(v, stage);
      } catch (e) {
        return reject(e as Error);
      }
      this.maybeFinish();
    });
  }
}
