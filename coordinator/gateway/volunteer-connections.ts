/**
 * Volunteer connections: a tab's socket from `hello` to goodbye. Validates everything a tab
 * sends before it reaches the scheduler (schema, rate, event names), keeps a tab's stage through
 * a blip shorter than the grace period, and turns every way of leaving (Stop, closed tab, lost
 * heartbeat, misbehaviour, quarantine) into one `drop`, which tells the stage table and the
 * scheduler. A tab that leaves on purpose while it is its stage's last replica first hands its
 * exact state over (the recovery ladder's handoff rung).
 */
import { capabilitiesSchema, statsSchema, type OutMeta } from '../../shared/protocol/events.js';
import { encodeStageState } from '../../shared/protocol/index.js';
import type { ResolvedConfig } from '../../shared/model/config.js';
import type { Registry, Volunteer, CoordinatorSocket } from '../tabs/registry.js';
import type { StageTable } from '../placement/stage-table.js';
import type { Placement } from '../placement/placement.js';
import type { Scheduler } from '../training/scheduler.js';
import type { SwarmMetrics } from '../record/metrics.js';
import type { EventLog } from '../record/events-log.js';
import type { Logger } from '../record/log.js';
import { TokenBucket } from './token-bucket.js';
import { clipText } from './clip.js';
import { parseOutMessage } from '../screening/relay-check.js';
import { askStage, ASK_TIMEOUT_MS, okReply } from '../tabs/ask-stage.js';
import type { BundleTransfer } from '../tabs/bundle-transfer.js';
import { checkStageState } from '../tabs/bundle-check.js';
import type { P2pSignalling } from './p2p-signalling.js';
import { hopKey, markHop } from '../../shared/transport/hop-trace.js';
import { lateFallbackSchema } from '../../shared/protocol/late-fallback.js';

/** A socket that has not said hello within this long is closed. */
export const HELLO_TIMEOUT_MS = 30_000;
/** How long a leaving last replica has to hand its state over. */
export const HANDOFF_TIMEOUT_MS = 10_000;
/** Addresses whose connection budget is remembered at most (older ones are forgotten first). */
const MAX_TRACKED_ADDRESSES = 10_000;
/** The room every registered tab is in (one broadcast reaches them all). */
export const VOLUNTEERS_ROOM = 'volunteers';

export interface ConnectionOptions {
  config: ResolvedConfig;
  graceMs: number;
  maxOffences: number;
  rateLimit: number;
  /** New connections one address may open per second (bursts of twice that). */
  connectionRate: number;
}

export interface ConnectionDeps {
  registry: Registry;
  /** How a leaving tab's state is pulled (in chunks). */
  transfer: BundleTransfer;
  stages: StageTable;
  placement: Placement;
  scheduler: Scheduler;
  metrics: SwarmMetrics;
  events: EventLog;
  log: Logger;
  /** The current run's id (a resume may change it). */
  runId: () => string;
  /** A resumed run's window: true when the tab reclaimed its stage. */
  claimForResume: (v: Volunteer) => boolean;
  /** A stage's last replica handed its state over: recovery records the rung. */
  onHandoff: (stage: number, v: Volunteer, bytes: number) => void;
  /** Credits a tab's result to its browser's contributions. */
  credit: (v: Volunteer, meta: OutMeta) => void;
  /** A browser's opt-in nickname for the public table (null: none). */
  setNickname: (browserId: string, nickname: string | null) => void;
  /** A tab is gone for good (its resume secret stops being valid). */
  forget: (v: Volunteer) => void;
  /** The client address of a socket (behind a trusted proxy, from X-Forwarded-For). */
  addressOf: (socket: CoordinatorSocket) => string;
  /** `--transport p2p|auto`: WebRTC signalling between tabs (absent: relay only). */
  p2p?: P2pSignalling;
}

const EVENTS = new Set(['out', 'stats', 'leave', 'hello', 'p2p-signal', 'p2p_fallback']);

export class VolunteerConnections {
  private bySocket = new Map<string, Volunteer>();
  private graceTimers = new Map<string, NodeJS.Timeout>();
  /** Connection budget per client address (reconnect floods are refused before any handler). */
  private perAddress = new Map<string, TokenBucket>();
  /** Set by close(): the coordinator is shutting down, so no leave starts recovery any more. */
  private closed = false;

  constructor(private opts: ConnectionOptions, private deps: ConnectionDeps) {}

  close(): void {
    this.closed = true;
    for (const t of this.graceTimers.values()) clearTimeout(t);
    this.graceTimers.clear();
  }

  /** Tells every replica of `stage` its place in the group. */
  announceGroup(stage: number): void {
    const group = this.deps.stages.replicas(stage);
    group.forEach((v, i) => v.socket.emit('group', { stage, replica: i + 1, of: group.length }));
  }

  /** Whether `address` may open one more connection now. */
  private admitAddress(address: string): boolean {
    let b = this.perAddress.get(address);
    if (!b) {
      if (this.perAddress.size >= MAX_TRACKED_ADDRESSES) this.perAddress.delete(this.perAddress.keys().next().value!);
      b = new TokenBucket(this.opts.connectionRate, 2 * this.opts.connectionRate);
      this.perAddress.set(address, b);
    }
    return b.take();
  }

  onConnection(socket: CoordinatorSocket): void {
    if (!this.admitAddress(this.deps.addressOf(socket))) {
      this.deps.metrics.rejected.inc({ reason: 'reconnect_rate' });
      socket.emit('rejected', { reason: 'reconnect_rate', message: `more than ${this.opts.connectionRate} connections/s from this address` });
      socket.disconnect(true);
      return;
    }
    const existing = this.bySocket.get(socket.id);
    if (socket.recovered && existing) {
      // A blip shorter than the grace period: same volunteer, same stage, no recovery.
      const t = this.graceTimers.get(existing.id);
      if (t) clearTimeout(t);
      this.graceTimers.delete(existing.id);
      existing.socket = socket;
      void socket.join(VOLUNTEERS_ROOM);
      this.attach(existing);
      this.deps.events.add('join', `${existing.id} reconnected within the grace period (stage ${existing.stage ?? 'spare'} kept)`, { volunteer: existing.id });
      return;
    }
    const { metrics } = this.deps;
    // Anything but hello before hello is counted and, repeated, disconnected.
    let early = 0;
    const beforeHello = (event: string) => {
      if (event === 'hello' || this.bySocket.has(socket.id)) return;
      metrics.rejected.inc({ reason: 'no_hello' });
      socket.emit('rejected', { reason: 'no_hello', message: `"${String(event).slice(0, 40)}" before hello` });
      if (++early >= this.opts.maxOffences) socket.disconnect(true);
    };
    socket.onAny(beforeHello);
    socket.once('hello', (caps, ack) => {
      socket.offAny(beforeHello);
      const parsed = capabilitiesSchema.safeParse(caps);
      if (!parsed.success || typeof ack !== 'function') {
        metrics.rejected.inc({ reason: 'schema' });
        socket.emit('rejected', { reason: 'schema', message: `bad hello: ${parsed.error?.issues[0]?.message ?? 'missing ack'}` });
        socket.disconnect(true);
        return;
      }
      this.welcome(socket, parsed.data, ack);
    });
    const t = setTimeout(() => {
      if (!this.bySocket.has(socket.id)) socket.disconnect(true);
    }, HELLO_TIMEOUT_MS);
    socket.on('disconnect', () => clearTimeout(t));
  }

  private welcome(socket: CoordinatorSocket, caps: Volunteer['caps'], ack: (r: { ok: true }) => void): void {
    const { registry, placement, scheduler, events } = this.deps;
    const v = registry.add(socket, caps);
    this.bySocket.set(socket.id, v);
    void socket.join(VOLUNTEERS_ROOM);
    this.attach(v);
    ack({ ok: true });
    socket.emit('welcome', { volunteerId: v.id, runId: this.deps.runId() });
    this.deps.p2p?.welcome(v);
    if (caps.browserId) this.deps.setNickname(caps.browserId, caps.nickname ?? null);
    events.add('join', `${v.id} joined (${v.caps.backend})`, { volunteer: v.id, backend: v.caps.backend, address: this.deps.addressOf(socket) });
    if (this.deps.claimForResume(v)) return;
    placement.enqueue(v);
    this.guard(v, 'placement', async () => {
      await placement.fillVacancies();
      // Not placed yet: it joins a group between iterations, or waits as a spare.
      if (v.stage === null && placement.isWaiting(v) && registry.has(v)) this.tellSpare(v);
      scheduler.kick();
    });
    scheduler.broadcastStatus();
  }

  /** A tab that waits for a stage hears so, so its page can say it. */
  private tellSpare(v: Volunteer): void {
    askStage(v, 'assign', [this.deps.placement.spareAssignment(v)], okReply, ASK_TIMEOUT_MS.assign).catch((e: Error) =>
      this.deps.log.warn({ volunteer: v.id, err: e.message }, 'spare notice not acknowledged'),
    );
  }

  /** Runs a fire-and-forget task; a failure is logged with its context, never unhandled. */
  private guard(v: Volunteer, what: string, f: () => Promise<void>): void {
    f().catch((e: unknown) => this.deps.log.error({ volunteer: v.id, what, err: (e as Error).message }, 'background task failed'));
  }

  private attach(v: Volunteer): void {
    const socket = v.socket;
    const { registry, scheduler, log } = this.deps;
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
          log.error({ volunteer: v.id, event: name, err: (e as Error).message }, 'handler failed');
          this.reject(v, 'handler', `${name} failed: ${(e as Error).message}`);
        }
      };
    socket.on('out', guard('out', (meta, frame) => {
      if (!registry.has(v)) return;
      const parsed = parseOutMessage(meta, frame);
      if (!parsed.ok) return this.reject(v, parsed.reason, parsed.message);
      if (v.stage === null) return this.reject(v, 'wrong_stage', 'a tab without a stage has no tasks');
      if (parsed.frame || parsed.meta.sent) markHop('coord.out', () => hopKey(parsed.meta.dir === 'B' ? 'grad' : 'act', parsed.meta.iteration, parsed.meta.mb, parsed.meta.hop));
      this.deps.credit(v, parsed.meta);
      scheduler.handleOut(v, parsed.meta, parsed.frame);
    }));
    socket.on('p2p_fallback', guard('p2p_fallback', (info, frame) => {
      if (!registry.has(v)) return;
      const parsed = lateFallbackSchema.safeParse(info);
      if (!parsed.success) return this.reject(v, 'schema', `bad p2p_fallback: ${parsed.error.issues[0]?.message}`);
      if (!(frame instanceof Uint8Array)) return this.reject(v, 'schema', 'p2p_fallback: the frame must be binary');
      if (v.stage === null) return this.reject(v, 'wrong_stage', 'a tab without a stage has no tasks');
      scheduler.handleLateFallback(v, parsed.data, frame);
    }));
    this.deps.p2p?.attach(v);
    socket.on('stats', guard('stats', (s) => {
      const parsed = statsSchema.safeParse(s);
      if (!parsed.success) return this.reject(v, 'schema', `bad stats: ${parsed.error.issues[0]?.message}`);
      v.stats = parsed.data;
    }));
    socket.on('leave', guard('leave', (ack) => {
      this.guard(v, 'leave', async () => {
        await this.leave(v);
        if (typeof ack === 'function') ack({ ok: true });
        await this.drop(v, 'left gracefully');
      });
    }));
    socket.on('hello', (_caps, ack) => {
      if (typeof ack === 'function') ack({ ok: true }); // already registered (reconnect)
    });
    socket.on('disconnect', (reason) => {
      // Shutting down (close() ran): the coordinator's own disconnects start no recovery.
      if (this.closed || !registry.has(v) || v.socket !== socket) return;
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
      if (!EVENTS.has(event)) this.reject(v, 'unknown_event', `unknown event "${String(event)}"`);
    });
  }

  /**
   * A tab leaving on purpose: if it is its stage's last replica, take its exact state first
   * (after the barrier in progress, if any, so the state is the one every other stage has).
   */
  private async leave(v: Volunteer): Promise<void> {
    const { stages, scheduler, log } = this.deps;
    const stage = v.stage;
    if (stage === null || stages.size(stage) > 1) return;
    await scheduler.whenBarrierDone();
    if (v.stage !== stage || stages.size(stage) > 1 || !this.deps.registry.has(v)) return;
    try {
      const raw = await this.deps.transfer.pull(v, { event: 'get_weights', parts: 'state' }, HANDOFF_TIMEOUT_MS);
      this.handoffs.set(v, encodeStageState(checkStageState(this.opts.config, stage, raw)));
    } catch (e) {
      log.warn({ volunteer: v.id, stage, err: (e as Error).message }, 'handoff failed: the recovery strategy rebuilds the stage');
    }
  }

  private handoffs = new Map<Volunteer, Uint8Array>();

  reject(v: Volunteer, reason: string, message: string): void {
    const { metrics, events } = this.deps;
    if (reason === 'nonfinite') {
      metrics.rejected.inc({ reason });
      this.quarantine(v, `non-finite values in a tensor: ${message}`);
      return;
    }
    v.offences++;
    metrics.rejected.inc({ reason });
    // The event log clips what it stores and shows (clip.ts); the tab gets the same clipped text.
    events.add('rejected', `rejected message from ${v.id} (${reason}): ${message}`, { volunteer: v.id, reason });
    v.socket.emit('rejected', { reason, message: clipText(message) });
    if (v.offences >= this.opts.maxOffences) {
      events.add('leave', `disconnecting ${v.id} after ${v.offences} rejected message(s)`, { volunteer: v.id });
      void this.drop(v, 'misbehaved');
    }
  }

  /**
   * A tab whose numbers are poisoned (non-finite tensors, outlier gradient norms): its
   * contribution is dropped (the iteration is abandoned) and its stage recovered.
   */
  quarantine(v: Volunteer, reason: string): void {
    if (!this.deps.registry.has(v)) return;
    this.deps.metrics.quarantined.inc();
    this.deps.events.add('quarantine', `quarantined ${v.id} (stage ${v.stage ?? 'spare'}): ${reason}`, { volunteer: v.id, stage: v.stage, reason });
    v.socket.emit('rejected', { reason: 'quarantine', message: reason });
    void this.drop(v, `quarantined: ${reason}`, { quarantined: true });
  }

  /** Removes a volunteer for good; its stage goes down the recovery ladder. */
  async drop(v: Volunteer, why: string, how: { quarantined?: boolean } = {}): Promise<void> {
    const { registry, stages, placement, scheduler, events } = this.deps;
    // After close() the store and scheduler are going away: a late drop (a grace timer, a handler
    // still awaiting) must not start a recovery against them.
    if (this.closed || !registry.has(v)) return;
    registry.remove(v.id);
    placement.forget(v);
    this.deps.forget(v);
    this.deps.p2p?.forget(v);
    this.bySocket.delete(v.socket.id);
    const t = this.graceTimers.get(v.id);
    if (t) clearTimeout(t);
    this.graceTimers.delete(v.id);
    v.socket.disconnect(true);
    const handoff = this.handoffs.get(v) ?? null;
    this.handoffs.delete(v);
    const left = stages.remove(v);
    events.add('leave', `${v.id} left (${why})${left ? `, stage ${left.stage} ${left.last ? 'has no replica left' : `keeps ${stages.size(left.stage)} replica(s)`}` : ''}`, {
      volunteer: v.id,
      stage: left?.stage ?? null,
      why,
    });
    if (!left) {
      scheduler.broadcastStatus();
      return;
    }
    this.announceGroup(left.stage);
    if (left.last && handoff) {
      stages.setPending(left.stage, { weights: handoff, reason: 'handoff', lrScale: 1 });
      this.deps.onHandoff(left.stage, v, handoff.byteLength);
    }
    await scheduler.tabLost(v, left.stage, left.last, { handedOver: handoff !== null, quarantined: how.quarantined });
  }

  /** Drops the tab for a reason found outside its messages (overdue task, failed assignment). */
  dropLater(v: Volunteer, why: string): void {
    void this.drop(v, why);
  }

}
