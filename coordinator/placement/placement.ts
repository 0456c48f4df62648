/**
 * Placement: which stage a tab serves. Every connected tab trains:
 *   1. a vacant stage whose weights are ready goes to the first waiting tab (any time);
 *   2. otherwise a tab joins the group where it lifts the swarm's bottleneck most: the stage whose
 *      measured time per task (its replicas sharing the work) is largest, fewest replicas first
 *      before anything is measured. Joining copies the group's exact weights and Adam state from
 *      a replica, so it happens between iterations (`admit`), never by re-running data;
 *   3. a tab is a spare only while every group is at `maxReplicas`, or while a stage is being
 *      rebuilt (it then takes that stage as soon as its weights are ready).
 * Rebalancing (`rebalance`): every `rebalanceEvery` iterations at most one tab moves from a stage
 * with spare capacity to the bottleneck, only if the bottleneck's time improves by at least
 * `REBALANCE_GAIN` and no stage is left empty. Every assignment and move is an event.
 * With `--skip-ratio > 0` a stage's time counts in proportion to its microbatches per iteration
 * (the edges run every one), and a slow edge tab swaps with a fast intermediate one
 * (skip-edge-swapper.ts, decided by skip-edge-placement.ts).
 */
import type { ResolvedConfig } from '../../shared/model/config.js';
import { stageParamSpecs, sizeOf } from '../../shared/model/params.js';
import type { Assignment } from '../../shared/protocol/events.js';
import type { WireEncoding } from '../../shared/protocol/wire-encoding.js';
import type { Volunteer } from '../tabs/registry.js';
import type { StageTable, PendingStage } from './stage-table.js';
import type { TabSpeeds } from '../tabs/tab-speed.js';
import type { EventLog } from '../record/events-log.js';
import type { Logger } from '../record/log.js';
import { askStage, ASK_TIMEOUT_MS, okReply, transferTimeoutMs } from '../tabs/ask-stage.js';
import type { BundleTransfer } from '../tabs/bundle-transfer.js';
import { pullStageState } from '../tabs/bundle-check.js';
import { median } from '../tabs/tab-speed.js';
import { fitsDevice, type StageMemory } from '../../shared/model/memory.js';
import type { DpSettings } from '../../shared/dp/dp-settings.js';
import { pullDilocoState, sendDilocoState } from '../training/diloco-join.js';
import { fanOutJoin, firstHolder, JOIN_PUSH_CONCURRENCY } from './join-fanout.js';
import { SkipEdgeSwapper } from './skip-edge-swapper.js';
import { skipStageLoads } from './skip-edge-placement.js';
import { skipRules } from '../../shared/schedule/skip-paths.js';

/** A move must cut the bottleneck's time per task by at least this fraction. */
export const REBALANCE_GAIN = 0.2;

export interface PlacementOptions {
  config: ResolvedConfig;
  lr: number;
  /** Most replicas per stage (Infinity = no cap). */
  maxReplicas: number;
  /** Consider one move every this many iterations (0 = never rebalance). */
  rebalanceEvery: number;
  /** How the run's relayed activations and gradients are encoded (told to every tab). */
  wire: WireEncoding;
  /** What each stage needs of a tab (weights, Adam, gradients, stash): a tab whose limits it exceeds never gets it. */
  stageMemory: readonly StageMemory[];
  /** How a stage's replicas combine (`--dp`, told to every tab); absent = exact. */
  dp?: DpSettings;
  /** Most pushes of a stage's state in flight at once when several tabs join it (join-fanout.ts); default JOIN_PUSH_CONCURRENCY. */
  joinConcurrency?: number;
  /** SkipPipe (`--skip-ratio > 0`): joins weigh each stage by its load, and slow edge tabs swap with fast intermediates (skip-edge-swapper.ts). */
  skip?: { ratio: number; microbatches: number; followSpeed: boolean };
}

export interface PlacementDeps {
  stages: StageTable;
  /** How a replica's state is pulled (in chunks). */
  transfer: BundleTransfer;
  speeds: TabSpeeds;
  events: EventLog;
  log: Logger;
  /** A tab that failed its assignment is dropped. */
  drop: (v: Volunteer, why: string) => void;
  /** Tells the stage's replicas their place in the group ("replica 2 of 3"). */
  announceGroup: (stage: number) => void;
  /** A fresh secret for `v`'s assignment to `stage` (only its hash is stored, see resume-window.ts). */
  issueClaim: (v: Volunteer, stage: number) => string;
  /**
   * Whether a tab may join a group (or move) now; absent = always. In `--dp diloco` only right
   * after a sync: a joiner copies a sibling whose weights are then its synced weights.
   */
  joinsAllowed?: () => boolean;
}

export class Placement {
  /** Connected tabs that serve no stage, in the order they joined. */
  private waiting = new Set<Volunteer>();
  /** While true (a resumed run waiting for its tabs), vacant stages are not filled. */
  private hold = false;
  private lastMove = -Infinity;
  /** Work per task of each stage, relative (matmul parameters it runs). */
  private readonly work: number[];
  /** Fan-outs started per stage: successive ones pull from different holders (join-fanout.ts). */
  private readonly pullTurns: number[];
  /** Microbatches per iteration of each stage relative to stage 0's (1 on full paths; SkipPipe's intermediates less). */
  private readonly load: number[];
  private readonly edgeSwapper: SkipEdgeSwapper | null;

  constructor(readonly opts: PlacementOptions, private deps: PlacementDeps) {
    const S = deps.stages.nStages;
    this.work = Array.from({ length: S }, (_, s) =>
      stageParamSpecs(opts.config, s)
        .filter((p) => !p.name.startsWith('embed.'))
        .reduce((n, p) => n + sizeOf(p.shape), 0),
    );
    this.pullTurns = Array.from({ length: S }, () => 0);
    const skip = opts.skip && opts.skip.ratio > 0 ? opts.skip : null;
    this.load = skip ? skipStageLoads(skipRules({ nStages: S, skipRatio: skip.ratio }), skip.microbatches).map((n) => n / skip.microbatches) : this.work.map(() => 1);
    this.edgeSwapper = skip ? new SkipEdgeSwapper({ config: opts.config, skipRatio: skip.ratio, microbatches: skip.microbatches, followSpeed: skip.followSpeed, work: this.work }, { ...deps, assign: (v, s, state, why) => this.assign(v, s, state, why, this.opts.lr) }) : null;
  }

  /** Vacant stages stay unfilled until `releaseVacancies` (a resumed run waits for its own tabs). */
  holdVacancies(): void {
    this.hold = true;
  }

  releaseVacancies(): void {
    this.hold = false;
  }

  /** A tab joined (or stopped serving): it waits for a stage. */
  enqueue(v: Volunteer): void {
    this.waiting.add(v);
  }

  forget(v: Volunteer): void {
    this.waiting.delete(v);
  }

  isWaiting(v: Volunteer): boolean {
    return this.waiting.has(v);
  }

  waitingCount(): number {
    return this.waiting.size;
  }

  /** Tabs that would be spares now: waiting, and no group can take them. */
  spares(): Volunteer[] {
    return [...this.waiting];
  }

  /** Whether a waiting tab can join some group now (some stage is under the cap). */
  canGrow(): boolean {
    const { stages } = this.deps;
    for (let s = 0; s < stages.nStages; s++) if (stages.size(s) + stages.reservations(s) < this.opts.maxReplicas) return true;
    return false;
  }

  private firstWaiting(stage?: number): Volunteer | undefined {
    for (const v of this.waiting) if (stage === undefined || this.cannotHold(v, stage) === null) return v;
    return undefined;
  }

  /** Why `v` cannot hold `stage` (its backend's limits, as it reported them), or null when it can. */
  cannotHold(v: Volunteer, stage: number): string | null {
    const limits = v.caps.limits;
    const need = this.opts.stageMemory[stage];
    return limits && need ? fitsDevice(need, limits) : null;
  }

  /** Why `v` can hold no stage of this run, or null when it can hold one. */
  private holdsNone(v: Volunteer): string | null {
    const why: string[] = [];
    for (let s = 0; s < this.deps.stages.nStages; s++) {
      const r = this.cannotHold(v, s);
      if (r === null) return null;
      why.push(r);
    }
    return why.length ? `this device cannot hold any stage of the run: ${why[0]}${why.length > 1 ? ` (and ${why.length - 1} more)` : ''}` : null;
  }

  /**
   * Vacant stages with ready weights go to waiting tabs (first come first served); with nobody
   * waiting, a replica of the largest group moves there (the run cannot go on without the stage,
   * and no iteration runs while a stage is vacant, so it leaves its group between iterations).
   */
  async fillVacancies(): Promise<void> {
    if (this.hold) return;
    const { stages } = this.deps;
    for (const stage of stages.fillable()) {
      if (stages.reservations(stage) > 0) continue; // another call is assigning it
      const pending = stages.pendingFor(stage);
      if (!pending) continue;
      const v = this.firstWaiting(stage) ?? this.borrow(stage);
      if (!v) continue; // nobody who can hold this stage: the next vacant stage may still be filled
      await this.assign(v, stage, pending.weights, pending.reason, this.opts.lr * pending.lrScale);
    }
  }

  /** Takes the newest replica of the largest group (at least two) for vacant `stage`. */
  private borrow(stage: number): Volunteer | undefined {
    const { stages, speeds, events } = this.deps;
    let from = -1;
    for (let s = 0; s < stages.nStages; s++) if (stages.size(s) >= 2 && (from < 0 || stages.size(s) > stages.size(from))) from = s;
    if (from < 0) return undefined;
    const v = stages.replicas(from).reverse().find((r) => this.cannotHold(r, stage) === null);
    if (!v) return undefined;
    stages.remove(v);
    speeds.forget(v); // its speed was measured on another stage's work
    this.deps.announceGroup(from);
    events.add('assign', `${v.id} leaves stage ${from} (${stages.size(from)} replica(s) stay) to serve vacant stage ${stage}`, { volunteer: v.id, from, to: stage, move: true });
    return v;
  }

  /**
   * Between iterations: waiting tabs join groups (bottleneck first), each receiving the exact
   * state of a replica of its new group. Every joiner is planned (reserved) first; then per stage
   * the state is pulled once and pushed to all its joiners, stages in parallel (join-fanout.ts).
   * Returns how many joined.
   */
  async admit(): Promise<number> {
    if (this.hold) return 0;
    await this.fillVacancies();
    const { stages } = this.deps;
    if (!stages.ready()) return 0; // a stage is vacant or rebuilding: the waiting tab is its spare
    if (this.deps.joinsAllowed && !this.deps.joinsAllowed()) return 0; // diloco: waits for the next sync
    const plan = new Map<number, Volunteer[]>();
    for (const v of [...this.waiting]) {
      if (!this.canGrow()) break;
      if (!this.waiting.has(v)) continue;
      // A tab whose backend cannot hold a stage is never given it; one that holds none stays a spare.
      const none = this.holdsNone(v);
      if (none !== null) {
        this.noteUnfit(v, none);
        continue;
      }
      const stage = this.bottleneck(undefined, v);
      if (stage === null) continue;
      // Reserved now, so the next tab's bottleneck counts it as joining.
      this.reserveFor(v, stage);
      plan.set(stage, [...(plan.get(stage) ?? []), v]);
    }
    const results = await Promise.all([...plan].map(([stage, joiners]) => this.joinMany(stage, joiners, 'join')));
    let joined = 0;
    for (const r of results)
      for (const [v, ok] of r) {
        if (ok === true) joined++;
        else if (ok === 'retry' && v.socket.connected) this.waiting.add(v);
      }
    return joined;
  }

  /**
   * The stage a new tab helps most: the largest time per task of its group (its replicas sharing
   * the work, tabs joining it counted too). A replica not measured yet counts as its stage's
   * median, a stage with no measurement as the median of every measured tab (1 ms before any),
   * so an unmeasured stage is neither always nor never chosen. Ties: fewer replicas first.
   */
  bottleneck(exclude?: number, forTab?: Volunteer): number | null {
    const { stages, speeds } = this.deps;
    const swarmTypical = median(stages.allReplicas().map((r) => speeds.taskMs(r)).filter((t): t is number => t !== null)) ?? 1;
    let best: number | null = null;
    let bestKey: [number, number] = [-Infinity, -Infinity];
    for (let s = 0; s < stages.nStages; s++) {
      const size = stages.size(s) + stages.reservations(s);
      if (s === exclude || size >= this.opts.maxReplicas || (forTab && this.cannotHold(forTab, s) !== null)) continue;
      const t = speeds.groupTaskMs(stages.replicas(s), { fallback: swarmTypical, joining: stages.reservations(s) })!;
      const key: [number, number] = [t * this.load[s]!, -size];
      if (key[0] > bestKey[0] || (key[0] === bestKey[0] && key[1] > bestKey[1])) {
        best = s;
        bestKey = key;
      }
    }
    return best;
  }

  /**
   * A sibling for single-replica `stage`, so that a suspicion of its tab can be audited (issue 22,
   * audit-siblings.ts): a waiting tab that can hold the stage joins it even past `maxReplicas`,
   * else the newest replica of the largest group of at least two moves there (no stage is left
   * empty). It copies the stage's exact state like any joiner, between iterations. Returns the tab
   * placed, or null when there is none (or joins are not allowed now).
   */
  async placeAuditSibling(stage: number): Promise<Volunteer | null> {
    const { stages, speeds, events } = this.deps;
    if (this.hold || !stages.ready() || (this.deps.joinsAllowed && !this.deps.joinsAllowed())) return null;
    let v = this.firstWaiting(stage);
    let from: number | null = null;
    if (!v) {
      for (let s = 0; s < stages.nStages; s++) if (s !== stage && stages.size(s) >= 2 && (from === null || stages.size(s) > stages.size(from))) from = s;
      v = from === null ? undefined : stages.replicas(from).reverse().find((r) => this.cannotHold(r, stage) === null);
      if (!v || from === null) return null;
      stages.remove(v);
      speeds.forget(v); // its speed was measured on another stage's work
      this.deps.announceGroup(from);
      events.add('assign', `${v.id} leaves stage ${from} (${stages.size(from)} replica(s) stay) to be an audit sibling on stage ${stage}`, { volunteer: v.id, from, to: stage, move: true });
    }
    if (await this.joinGroup(v, stage, from === null ? 'join' : 'move')) return v;
    if (from !== null && v.socket.connected) this.waiting.add(v);
    return null;
  }

  /** Copies a replica's exact state to `v` and makes it a replica of `stage`. */
  private async joinGroup(v: Volunteer, stage: number, why: 'join' | 'move'): Promise<boolean> {
    if (!this.deps.stages.owner(stage)) return false;
    this.reserveFor(v, stage);
    const r = await this.joinMany(stage, [v], why);
    const ok = r.get(v);
    // A failed pull leaves a joining tab waiting, as before it was planned.
    if (ok === 'retry' && why === 'join' && v.socket.connected) this.waiting.add(v);
    return ok === true;
  }

  /**
   * `joiners` (each reserved for `stage`) receive the state of one replica of `stage`: pulled once
   * (from the next holder in rotation; a failing one is skipped), checked, re-encoded, and pushed
   * to every joiner, at most `joinConcurrency` at once (join-fanout.ts). In diloco the group's
   * outer state is pulled once from the same holder and follows each assignment. Per joiner: true
   * (it serves the stage), false (its assignment or outer state failed: dropped, or it left), or
   * 'retry' (no holder delivered: its reservation is released, it may join later).
   */
  private async joinMany(stage: number, joiners: Volunteer[], why: 'join' | 'move'): Promise<Map<Volunteer, boolean | 'retry'>> {
    const { stages, log, events } = this.deps;
    const diloco = this.opts.dp?.mode === 'diloco';
    const holders = firstHolder(stages.replicas(stage), this.pullTurns[stage]!++);
    const result = await fanOutJoin(holders, joiners, {
      concurrency: this.opts.joinConcurrency ?? JOIN_PUSH_CONCURRENCY,
      pull: async (source) => {
        try {
          const state = await pullStageState(this.deps.transfer, this.opts.config, stage, source);
          const outer = diloco ? (await pullDilocoState(this.deps.transfer, this.opts.config, stage, source)).bundle : null;
          return { state, outer };
        } catch (e) {
          log.warn({ stage, source: source.id, err: (e as Error).message }, 'could not copy a replica state');
          throw e;
        }
      },
      push: async (v, { state, outer }, source) => {
        if (!(await this.handOver(v, stage, state, why === 'join' ? `join: copy of ${source.id}` : `move: copy of ${source.id}`, this.opts.lr))) return false;
        if (!outer) return true;
        try {
          await sendDilocoState(this.deps.transfer, v, stage, outer);
          return true;
        } catch (e) {
          // Without the group's outer state it would apply other outer steps than its siblings.
          this.deps.drop(v, `could not take the group's diloco state: ${(e as Error).message}`);
          return false;
        }
      },
    });
    const out = new Map<Volunteer, boolean | 'retry'>();
    const pushes: string[] = [];
    let pullMs = 0;
    let pushMs = 0;
    for (const v of joiners) {
      const o = result.outcomes.get(v)!;
      if (o.kind === 'no-source') {
        stages.release(v);
        out.set(v, 'retry');
        continue;
      }
      out.set(v, o.kind === 'joined');
      pullMs = o.timing.pullMs;
      pushMs = Math.max(pushMs, o.timing.pushMs);
      pushes.push(`${v.id} ${(o.timing.pushMs / 1000).toFixed(1)} s${o.kind === 'joined' ? '' : ` (failed: ${o.why})`}`);
    }
    // Each fan-out is an event with its measured times (the benchmark reads them: bench/scaling.ts).
    if (result.holder)
      events.add('assign', `stage ${stage}: ${joiners.length} tab(s) took one pull of ${result.holder.id}'s state (pull ${(pullMs / 1000).toFixed(1)} s; push ${pushes.join(', ')})`, {
        stage,
        fanout: joiners.length,
        source: result.holder.id,
        pullMs,
        pushMs,
      });
    return out;
  }

  /** The assignment handshake: reserve, send, and on the tab's acknowledgement confirm. */
  private async assign(v: Volunteer, stage: number, weights: Uint8Array | null, reason: string, lr: number): Promise<boolean> {
    this.reserveFor(v, stage);
    return this.handOver(v, stage, weights, reason, lr);
  }

  /** `v` stops waiting and is reserved for `stage` (its assignment is on the way). */
  private reserveFor(v: Volunteer, stage: number): void {
    this.waiting.delete(v);
    this.deps.stages.reserve(stage, v);
  }

  /** Sends `v` (reserved for `stage`) its assignment; on its acknowledgement confirms it. */
  private async handOver(v: Volunteer, stage: number, weights: Uint8Array | null, reason: string, lr: number): Promise<boolean> {
    const { stages, events, log } = this.deps;
    if (stages.reservedFor(v) !== stage) return false; // it left (or was dropped) while it waited for the state
    const a: Assignment = { stage, config: this.opts.config, lr, weights, reason, wire: this.opts.wire, resumeToken: this.deps.issueClaim(v, stage), ...(this.opts.dp ? { dp: this.opts.dp } : {}) };
    try {
      // A large state goes ahead in pieces, so the heartbeat's pings pass (bundle-push.ts).
      if (weights && (await this.deps.transfer.push(v, weights))) Object.assign(a, { weights: null, staged: true });
      await askStage(v, 'assign', [a], okReply, weights ? transferTimeoutMs(ASK_TIMEOUT_MS.state, weights.byteLength) : ASK_TIMEOUT_MS.assign);
    } catch (e) {
      stages.release(v);
      log.warn({ volunteer: v.id, stage, err: (e as Error).message }, 'assignment failed');
      // The pending weights were checked before they were stored: a tab refusing them is the
      // tab's fault (it is dropped), not a reason to throw them away; the next tab gets them.
      this.deps.drop(v, `assignment failed: ${(e as Error).message}`);
      return false;
    }
    if (stages.reservedFor(v) !== stage) return false; // dropped while the assignment was on the way
    stages.confirm(v);
    events.add('assign', `stage ${stage} -> ${v.id} (${v.caps.backend}; ${reason}; replica ${stages.size(stage)} of ${stages.size(stage)})`, {
      stage,
      volunteer: v.id,
      reason,
      replicas: stages.size(stage),
    });
    this.deps.announceGroup(stage);
    return true;
  }

  /** Tells a waiting tab it is a spare for now (and why, when its backend can hold no stage). */
  spareAssignment(v?: Volunteer): Assignment {
    const none = v ? this.holdsNone(v) : null;
    return { stage: null, config: this.opts.config, lr: this.opts.lr, weights: null, reason: none ? `spare: ${none}` : 'spare', wire: this.opts.wire };
  }

  /** Tabs already told they can hold no stage (one event each). */
  private unfitNoted = new WeakSet<Volunteer>();

  private noteUnfit(v: Volunteer, why: string): void {
    if (this.unfitNoted.has(v)) return;
    this.unfitNoted.add(v);
    this.deps.events.add('assign', `${v.id} stays a spare: ${why}`, { volunteer: v.id, unfit: true });
  }

  /**
   * One rebalancing step after iteration `iteration`: move the replica whose move cuts the
   * bottleneck's time per task most, if by at least REBALANCE_GAIN. Returns the move made.
   */
  async rebalance(iteration: number): Promise<{ volunteer: string; from: number; to: number } | null> {
    if (this.opts.rebalanceEvery <= 0 || iteration - this.lastMove < this.opts.rebalanceEvery || iteration % this.opts.rebalanceEvery !== 0) return null;
    if (this.deps.joinsAllowed && !this.deps.joinsAllowed()) return null;
    if (await this.edgeSwapper?.maybeSwap(iteration)) return null; // SkipPipe: a fast tab took an edge stage
    const plan = this.planMove();
    if (!plan) return null;
    const { stages, events } = this.deps;
    const { v, from, to, before, after } = plan;
    this.lastMove = iteration;
    stages.remove(v);
    this.deps.announceGroup(from);
    events.add('assign', `rebalance: ${v.id} moves from stage ${from} to the bottleneck stage ${to} (bottleneck ${before.toFixed(1)} -> ${after.toFixed(1)} ms per task)`, {
      volunteer: v.id,
      from,
      to,
      move: true,
      beforeMs: before,
      afterMs: after,
    });
    if (!(await this.joinGroup(v, to, 'move'))) {
      this.waiting.add(v);
      return null;
    }
    return { volunteer: v.id, from, to };
  }

  /** The best single move, if it lifts the bottleneck by the margin (exported for tests). */
  planMove(): { v: Volunteer; from: number; to: number; before: number; after: number } | null {
    const { stages, speeds } = this.deps;
    const S = stages.nStages;
    const times = Array.from({ length: S }, (_, s) => speeds.groupTaskMs(stages.replicas(s)));
    if (times.some((t) => t === null)) return null;
    const t = times as number[];
    const to = t.indexOf(Math.max(...t));
    if (stages.size(to) >= this.opts.maxReplicas) return null;
    const before = t[to]!;
    let best: { v: Volunteer; from: number; to: number; before: number; after: number } | null = null;
    for (let from = 0; from < S; from++) {
      if (from === to || stages.size(from) < 2) continue;
      const group = stages.replicas(from);
      for (const v of group) {
        if (this.cannotHold(v, to) !== null) continue;
        const tv = speeds.taskMs(v);
        if (tv === null) continue;
        const rest = group.filter((r) => r !== v);
        const fromAfter = speeds.groupTaskMs(rest)!;
        // The mover's speed on the target stage, scaled by how much work a task there is.
        const tvThere = tv * (this.work[to]! / this.work[from]!);
        const toAfter = 1 / (1 / before + 1 / tvThere);
        const after = Math.max(...t.map((x, s) => (s === from ? fromAfter : s === to ? toAfter : x)));
        if (after <= (1 - REBALANCE_GAIN) * Math.max(...t) && (!best || after < best.after)) best = { v, from, to, before, after };
      }
    }
    return best;
  }
}

export type { PendingStage };
