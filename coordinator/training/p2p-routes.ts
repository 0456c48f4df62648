/**
 * Which hops send their output peer to peer (`--transport p2p|auto`, docs/p2p.md), and which
 * pairs of tabs may therefore signal each other. The scheduler still picks every hop's replica:
 * a frame goes straight to its receiver only when that receiver is already fixed when the sender
 * gets its task, i.e. the receiving stage has a single replica (a stage with siblings keeps the
 * relay, so the coordinator holds the inputs it re-runs a lost replica's hops from). Both tabs
 * must have said they can open WebRTC links, and in `auto` a pair whose link failed is
 * relay-only for a back-off that doubles with each failure in a row.
 */
import type { Transport, FallbackReason } from '../../shared/protocol/p2p-messages.js';
import type { RelayedPeerFrame } from '../../shared/protocol/late-fallback.js';
import type { Volunteer } from '../tabs/registry.js';
import type { StageTable } from '../placement/stage-table.js';
import type { SwarmMetrics } from '../record/metrics.js';
import { P2pAudit, type P2pAuditDeps } from '../screening/p2p-audit.js';

export interface P2pRouteOptions {
  transport: Transport;
  /** First relay-only period of a failing pair in `auto` (doubles per failure in a row). */
  backoffMs: number;
  /** Longest relay-only period. */
  maxBackoffMs: number;
}

export const DEFAULT_P2P_ROUTES: P2pRouteOptions = { transport: 'relay', backoffMs: 60_000, maxBackoffMs: 15 * 60_000 };

interface PairState {
  /** Failures in a row (0 after a frame got through). */
  failures: number;
  /** Relay-only until then (ms since epoch). */
  until: number;
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

export class P2pRoutes {
  /** Pairs the coordinator told to exchange frames: only these may signal each other. */
  private readonly pairs = new Map<string, PairState>();

  constructor(readonly opts: P2pRouteOptions, private deps: { stages: StageTable; metrics: SwarmMetrics; audit: P2pAuditDeps; now?: () => number }) {}

  /** The trust checks of one pass's peer-to-peer frames (undefined in relay mode). */
  newAudit(attempt: number): P2pAudit | undefined {
    return this.enabled ? new P2pAudit(this.deps.audit, attempt) : undefined;
  }

  get enabled(): boolean {
    return this.opts.transport !== 'relay';
  }

  private now(): number {
    return this.deps.now?.() ?? Date.now();
  }

  /**
   * The tab that receives `from`'s output for `stage` peer to peer, or null when it goes through
   * the relay (relay mode, a stage with siblings, a tab without WebRTC, a pair backed off).
   */
  receiverFor(from: Volunteer, stage: number): Volunteer | null {
    if (!this.enabled) return null;
    const replicas = this.deps.stages.replicas(stage);
    if (replicas.length !== 1) return null;
    const to = replicas[0]!;
    if (to === from) return null;
    if (!from.caps.webrtc || !to.caps.webrtc) {
      this.count('unsupported');
      return null;
    }
    const key = pairKey(from.id, to.id);
    const st = this.pairs.get(key);
    if (st && st.until > this.now()) {
      this.count('backoff');
      return null;
    }
    if (!st) this.pairs.set(key, { failures: 0, until: 0 });
    return to;
  }

  /** Whether `a` and `b` may exchange WebRTC signals (the coordinator routed frames between them). */
  mayTalk(a: string, b: string): boolean {
    return this.enabled && this.pairs.has(pairKey(a, b));
  }

  /** A receiver took a frame peer to peer (its `got`): its bytes count as p2p, and the pair's failures are forgotten. */
  took(sender: Volunteer, receiver: Volunteer, kind: 'act' | 'grad', bytes: number): void {
    this.deps.metrics.p2pBytes.inc({ direction: kind === 'grad' ? 'backward' : 'forward' }, bytes);
    this.delivered(sender, receiver);
  }

  /**
   * A frame whose sender's link broke after its early report (`p2p_fallback`, already checked):
   * passed to the receiver, whose task waits for it (docs/p2p.md#the-early-report). Counted as relayed.
   */
  relayFrame(to: Volunteer, info: RelayedPeerFrame, frame: Uint8Array): void {
    this.deps.metrics.relayBytes.inc({ direction: info.kind === 'grad' ? 'backward' : 'forward' }, frame.byteLength);
    to.socket.emit('p2p_relayed', info, frame);
  }

  /** A frame got through peer to peer: the pair's failures are forgotten. */
  delivered(a: Volunteer, b: Volunteer): void {
    const st = this.pairs.get(pairKey(a.id, b.id));
    if (st) st.failures = 0;
  }

  /** A frame meant for a peer came through the relay: counted; in `auto` the pair backs off. */
  fellBack(a: Volunteer, b: Volunteer | null, reason: FallbackReason): void {
    this.count(reason);
    if (!b || this.opts.transport !== 'auto' || reason === 'unsupported' || reason === 'backoff') return;
    const key = pairKey(a.id, b.id);
    const st = this.pairs.get(key) ?? { failures: 0, until: 0 };
    st.until = this.now() + Math.min(this.opts.maxBackoffMs, this.opts.backoffMs * 2 ** st.failures);
    st.failures++;
    this.pairs.set(key, st);
  }

  /** Frames meant for a peer that went through the relay, by reason, since the start (the dashboard). */
  readonly fallbacks = new Map<FallbackReason, number>();

  private count(reason: FallbackReason): void {
    this.deps.metrics.p2pFallbacks.inc({ reason });
    this.fallbacks.set(reason, (this.fallbacks.get(reason) ?? 0) + 1);
  }

  /** Relay-only pairs now, with how long they stay so (the dashboard). */
  backedOff(): { pair: string; ms: number; failures: number }[] {
    const now = this.now();
    return [...this.pairs].filter(([, s]) => s.until > now).map(([pair, s]) => ({ pair, ms: s.until - now, failures: s.failures }));
  }

  /** `v` is gone: its pairs too. */
  forget(v: Volunteer): void {
    for (const key of [...this.pairs.keys()]) if (key.split('|').includes(v.id)) this.pairs.delete(key);
  }
}
