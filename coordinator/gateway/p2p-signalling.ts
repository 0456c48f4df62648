/**
 * WebRTC signalling between tabs over the socket.io connections they already have
 * (`--transport p2p|auto`, docs/p2p.md#signalling). Each tab gets its RTCConfiguration after
 * `welcome` (ICE servers; TURN credentials minted for that tab, renewed before they expire).
 * A `p2p-signal` from a tab is validated (outgoingSignalSchema), rate-limited per tab, and
 * forwarded only to a tab it was told to exchange frames with, stamped with the sender's id
 * (never copied from what the sender wrote). A signal that is not forwarded is counted
 * (`swarm_rejected_messages_total{reason}`); a malformed one is an offence, as is a stripe index
 * this run's `--p2p-stripes` does not have.
 */
import { outgoingSignalSchema } from '../../shared/protocol/signal.js';
import type { P2pConfig, Transport } from '../../shared/protocol/p2p-messages.js';
import { turnCredentials } from '../../shared/transport/turn-credentials.js';
import type { Volunteer } from '../tabs/registry.js';
import type { SwarmMetrics } from '../record/metrics.js';
import { TokenBucket } from './token-bucket.js';

export interface P2pOptions {
  transport: Transport;
  /** ICE server URLs (`stun:host:port`, `turn:host:port?transport=udp`, `turns:...`). */
  iceServers: string[];
  /** coturn's `static-auth-secret`: TURN entries get per-tab credentials (turn-credentials.ts). */
  turnSecret?: string;
  /** Lifetime of minted TURN credentials, seconds. */
  turnTtlS: number;
  /** Signals per second a tab may send (bursts of twice that). */
  signalRate: number;
  /** Share of peer-to-peer frames the coordinator fetches from their receiver and checks itself. */
  auditRate: number;
  /** Peer connections per pair link, 1 .. MAX_STRIPES (docs/p2p.md#striped-frames). */
  stripes: number;
}

export const DEFAULT_P2P: P2pOptions = { transport: 'relay', iceServers: [], turnTtlS: 3600, signalRate: 50, auditRate: 0.05, stripes: 1 };

/** Checks the ICE server list of the flags; throws with a message naming the bad entry. */
export function checkIceServers(urls: string[], turnSecret: string | undefined): void {
  for (const u of urls) {
    if (!/^(stun|stuns|turn|turns):[^\s]+$/.test(u)) throw new Error(`--ice-server ${u}: expected stun:, stuns:, turn: or turns: followed by host[:port]`);
    if (/^turns?:/.test(u) && !turnSecret) throw new Error(`--ice-server ${u}: a TURN server needs --turn-secret (coturn's static-auth-secret)`);
  }
}

export interface P2pSignallingDeps {
  /** The tab with this id, if connected. */
  tab: (id: string) => Volunteer | undefined;
  /** Whether the coordinator routes frames between these two tabs (p2p-routes.ts). */
  mayTalk: (a: string, b: string) => boolean;
  metrics: SwarmMetrics;
  reject: (v: Volunteer, reason: string, message: string) => void;
  warn: (v: Volunteer, message: string) => void;
}

export class P2pSignalling {
  private renewals = new Map<Volunteer, NodeJS.Timeout>();

  constructor(private opts: P2pOptions, private deps: P2pSignallingDeps) {}

  get enabled(): boolean {
    return this.opts.transport !== 'relay';
  }

  /** The RTCConfiguration for tab `id` (TURN credentials minted for it). */
  async rtcConfig(id: string): Promise<RTCConfiguration> {
    const iceServers: RTCIceServer[] = [];
    for (const urls of this.opts.iceServers) {
      if (/^turns?:/.test(urls)) {
        const c = await turnCredentials(this.opts.turnSecret!, id, this.opts.turnTtlS);
        iceServers.push({ urls, username: c.username, credential: c.credential });
      } else iceServers.push({ urls });
    }
    return { iceServers };
  }

  /** A tab joined: it hears how to open links, and again before its TURN credentials expire. */
  welcome(v: Volunteer): void {
    if (!this.enabled) return;
    const send = () =>
      void this.rtcConfig(v.id)
        .then((rtc) => v.socket.emit('p2p_config', { transport: this.opts.transport, rtc, ...(this.opts.stripes > 1 ? { stripes: this.opts.stripes } : {}) } satisfies P2pConfig))
        .catch((e: Error) => this.deps.warn(v, `p2p config not sent: ${e.message}`));
    send();
    if (this.opts.iceServers.some((u) => /^turns?:/.test(u))) {
      const t = setInterval(send, Math.max(30, this.opts.turnTtlS * 0.8) * 1000);
      t.unref();
      this.renewals.set(v, t);
    }
  }

  /** Listens to `v`'s signals (on every connection of it, a blip's reconnect included). */
  attach(v: Volunteer): void {
    const bucket = new TokenBucket(this.opts.signalRate, 2 * this.opts.signalRate);
    const socket = v.socket;
    socket.on('p2p-signal', (raw) => {
      try {
        this.forward(v, raw, bucket);
      } catch (e) {
        this.deps.reject(v, 'handler', `p2p-signal failed: ${(e as Error).message}`);
      }
    });
  }

  private forward(v: Volunteer, raw: unknown, bucket: TokenBucket): void {
    const { metrics } = this.deps;
    if (!this.enabled) return this.deps.reject(v, 'p2p_signal', 'this run relays every frame (--transport relay)');
    const parsed = outgoingSignalSchema.safeParse(raw);
    if (!parsed.success) return this.deps.reject(v, 'schema', `bad p2p-signal: ${parsed.error.issues[0]?.message}`);
    const { to, signal } = parsed.data;
    const stripe = 'stripe' in signal ? signal.stripe : undefined;
    if (stripe !== undefined && (this.opts.stripes === 1 || stripe >= this.opts.stripes)) return this.deps.reject(v, 'schema', `bad p2p-signal: stripe ${stripe}, but this run has ${this.opts.stripes} (--p2p-stripes)`);
    if (!bucket.take()) return void metrics.rejected.inc({ reason: 'p2p_signal_rate' });
    const peer = this.deps.tab(to);
    // A peer that just left, or a pair that never exchanged frames: not forwarded, not an offence.
    if (!peer || peer === v || !this.deps.mayTalk(v.id, to)) return void metrics.rejected.inc({ reason: 'p2p_signal_pair' });
    peer.socket.emit('p2p-signal', { from: v.id, signal });
  }

  /** `v` is gone. */
  forget(v: Volunteer): void {
    const t = this.renewals.get(v);
    if (t) clearInterval(t);
    this.renewals.delete(v);
  }

  close(): void {
    for (const t of this.renewals.values()) clearInterval(t);
    this.renewals.clear();
  }
}
