/**
 * A tab's side of peer-to-peer frames (`--transport p2p|auto`, docs/p2p.md): it owns the tab's
 * PeerLinks, sends a task's output to the peer the coordinator named (reporting bytes and
 * digest, or why it fell back to the relay), and keeps frames that arrived from peers until the
 * task that needs them comes, checking each with the same rules the coordinator applies to a
 * relayed frame (checkHopFrame) before the stage sees it. Browser and Node run this same code;
 * only `createPeerConnection` differs.
 */
import { PeerLinks } from '../transport/peer-links.js';
import type { FrameLinks, FrameLinksDeps } from '../transport/link-bridge.js';
import { LinkDownError } from '../transport/link-down-error.js';
import { frameDigest } from '../transport/frame-digest.js';
import { hopKey, hopTracing, markHop, traceNow } from '../transport/hop-trace.js';
import { inspectTensorFrame } from '../protocol/codec.js';
import { checkHopFrame } from '../protocol/hop-frame-check.js';
import { FrameError } from '../protocol/frame-error.js';
import type { Signal } from '../protocol/signal.js';
import { pairStatsOf, type PairStat } from '../protocol/pair-stats.js';
import type { WireEncoding } from '../protocol/wire-encoding.js';
import { stripesOf, type FallbackReason, type GotReport, type InputFrom, type P2pConfig, type SendTo, type SentReport } from '../protocol/p2p-messages.js';
import type { RelayedPeerFrame } from '../protocol/late-fallback.js';

export interface PeerFramesDeps {
  /** `new RTCPeerConnection(config)`; absent: this tab cannot open links (everything is relayed). */
  createPeerConnection?: (config: RTCConfiguration) => RTCPeerConnection;
  /** Or links that live elsewhere (a worker's, on its page: BridgedLinks). */
  createLinks?: (deps: FrameLinksDeps) => FrameLinks;
  /** Merged into the coordinator's RTCConfiguration (Node tests: bind ICE to loopback). */
  rtcExtra?: RTCConfiguration;
  /** Emits `p2p-signal {to, signal}` on the tab's socket. */
  signal: (to: string, signal: Signal) => void;
  log: (level: 'info' | 'warn' | 'error', message: string) => void;
}

/** Frames from peers kept at most (oldest dropped first): a peer cannot fill the tab's memory. */
const MAX_INBOX = 64;
/** Frames taken that stay for the coordinator's audit (it asks right after the task's result). */
const MAX_KEPT = 32;
/**
 * How long a task waits for its peer frame. The sender reports a frame when it hands it to a link
 * that works (the early report), so the frame may still be on its way, or come through the relay
 * after all: a link that breaks is noticed within its silence timeout (5 s) and the frame then
 * crosses the coordinator (`p2p_fallback` -> `p2p_relayed`). Under the task watchdog's 30 s floor.
 */
export const PEER_FRAME_WAIT_MS = 20_000;

/** Why a task could not take its input from the peer (the receiver reports it; docs/p2p.md#trust). */
export class PeerFrameRefused extends Error {
  constructor(readonly reason: string, message: string, readonly digest?: string) {
    super(message);
  }
}

/** Link failures worth one fresh link before the frame goes through the relay. */
const RETRIED = new Set<string>(['peer-closed', 'signal', 'ice-failed']);
const RETRY_WITHIN_MS = 2000;

/**
 * Frames are keyed by the pass's attempt too: after an abandoned iteration the retry has the same
 * (iteration, microbatch, hop), and a late frame of the old attempt must not stand in for the new
 * one. The attempt travels in front of the frame (4 bytes, little-endian); digests cover the frame.
 */
function frameKey(kind: string, attempt: number, iteration: number, mb: number, hop: number): string {
  return `${kind}:${attempt}:${iteration}:${mb}:${hop}`;
}

const ENVELOPE_BYTES = 4;

/** Hop-trace marks of an acknowledged frame (shared/transport/hop-trace.ts): written and acked. */
function traceSent(frame: Uint8Array, ms: number, writtenMs: number | undefined): void {
  const acked = traceNow();
  const { header } = inspectTensorFrame(frame);
  const key = hopKey(header.kind, header.iteration, header.microbatch, header.hop);
  if (writtenMs !== undefined) markHop('written', key, acked - ms + writtenMs);
  markHop('acked', key, acked);
}

export class PeerFrames {
  private links: FrameLinks | null = null;
  private self: string | null = null;
  /** Frames from peers not yet taken by a task, by (kind, iteration, microbatch, hop). */
  private inbox = new Map<string, { from: string; frame: Uint8Array }>();
  /** Keys already taken: a frame that arrives again (its ack was lost) is dropped. */
  private taken = new Set<string>();
  private waiters = new Map<string, () => void>();
  /** Waits ended by `cancelWaits` (their tasks belong to an abandoned pass). */
  private cancelled = new Set<string>();
  /** The last frames taken, as received: the coordinator may ask for one (audit). */
  private kept = new Map<string, Uint8Array>();
  /** Peers whose link acknowledged a frame and has not gone down since: a frame to them is reported when handed over. */
  private proven = new Set<string>();

  constructor(private deps: PeerFramesDeps) {}

  /** Whether this tab can open links at all. */
  get supported(): boolean {
    return this.deps.createPeerConnection !== undefined || this.deps.createLinks !== undefined;
  }

  /** The coordinator's `p2p_config` (again on TURN renewal): links opened from now on use it. */
  configure(self: string, c: P2pConfig): void {
    const create = this.deps.createPeerConnection;
    if ((!create && !this.deps.createLinks) || c.transport === 'relay') return;
    const rtcConfig = { ...c.rtc, ...this.deps.rtcExtra };
    if (this.links && this.self === self) {
      this.links.setRtcConfig(rtcConfig);
      return;
    }
    let stripes: number;
    try {
      stripes = stripesOf(c);
    } catch (e) {
      this.deps.log('warn', `${(e as Error).message}: one connection per link`);
      stripes = 1;
    }
    this.links?.closeAll();
    this.self = self;
    const deps: FrameLinksDeps = {
      self,
      signal: this.deps.signal,
      rtcConfig,
      ...(stripes > 1 ? { stripes } : {}),
      events: {
        onFrame: (peer, frame) => this.arrived(peer, frame),
        onLinkDown: (peer, failure, detail) => {
          this.proven.delete(peer);
          this.deps.log('warn', `link to ${peer} down (${failure}): ${detail}`);
        },
        onSignalRejected: (from, message) => this.deps.log('warn', `signal from ${from} rejected: ${message}`),
      },
    };
    this.links = create ? new PeerLinks({ ...deps, createPeerConnection: create }) : this.deps.createLinks!(deps);
  }

  /** Per-peer link figures for the `stats` heartbeat (empty in relay mode). */
  pairStats(): PairStat[] {
    return this.links ? pairStatsOf(this.links.stats()) : [];
  }

  handleSignal(from: string, signal: unknown): void {
    this.links?.handleSignal(from, signal);
  }

  /**
   * Sends a task's output to its peer: the report for `out` once the peer acknowledged it, or why
   * it must go through the relay after all. With `onHanded`, a frame for a peer whose link already
   * carried one is reported the moment it is handed to the link (the early report, with the same
   * bytes and digest): the coordinator sends the receiver its task at once, and if the link then
   * breaks the result is a fallback the caller sends as `p2p_fallback` (docs/p2p.md#the-early-report).
   */
  async send(to: SendTo, attempt: number, frame: Uint8Array, onHanded?: (sent: SentReport) => void): Promise<{ sent: SentReport } | { fallback: FallbackReason }> {
    const links = this.links;
    if (!links) return { fallback: 'unsupported' };
    const digest = frameDigest(frame);
    const enveloped = new Uint8Array(ENVELOPE_BYTES + frame.byteLength);
    new DataView(enveloped.buffer).setUint32(0, attempt >>> 0, true);
    enveloped.set(frame, ENVELOPE_BYTES);
    const t0 = performance.now();
    for (let attempt = 0; ; attempt++) {
      try {
        const sending = links.send(to.peer, enveloped);
        if (onHanded && attempt === 0 && this.proven.has(to.peer)) {
          sending.catch(() => {}); // awaited below; a rejection while the digest is computed is not unhandled
          onHanded({ to: to.peer, bytes: frame.byteLength, digest: await digest });
        }
        const receipt = await sending;
        this.proven.add(to.peer);
        if (hopTracing()) traceSent(frame, receipt.ms, receipt.writtenMs);
        return { sent: { to: to.peer, bytes: receipt.bytes - ENVELOPE_BYTES, digest: await digest } };
      } catch (e) {
        if (!(e instanceof LinkDownError)) throw e;
        // A fresh link that died while opening (node-datachannel 0.33.4 closes one in a few right
        // after ICE connects; docs/p2p.md) gets one more try within the open budget.
        if (attempt === 0 && RETRIED.has(e.failure) && performance.now() - t0 < RETRY_WITHIN_MS) continue;
        return { fallback: e.failure };
      }
    }
  }

  private arrived(from: string, data: Uint8Array): void {
    let key: string;
    let frame: Uint8Array;
    try {
      if (data.byteLength < ENVELOPE_BYTES) throw new Error('shorter than its envelope');
      const attempt = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0, true);
      frame = data.subarray(ENVELOPE_BYTES);
      const { header } = inspectTensorFrame(frame);
      key = frameKey(header.kind, attempt, header.iteration, header.microbatch, header.hop);
      markHop('recv.frame', hopKey(header.kind, header.iteration, header.microbatch, header.hop));
    } catch (e) {
      return this.deps.log('warn', `unreadable frame from ${from} dropped: ${(e as Error).message}`);
    }
    this.keep(key, from, frame);
  }

  /** Into the inbox, unless it came already (its ack was lost and the sender sent it again, or relayed it). */
  private keep(key: string, from: string, frame: Uint8Array): void {
    if (this.taken.has(key) || this.inbox.has(key)) return; // a duplicate
    if (this.inbox.size >= MAX_INBOX) this.inbox.delete(this.inbox.keys().next().value!);
    this.inbox.set(key, { from, frame });
    this.waiters.get(key)?.();
  }

  /**
   * A peer frame the coordinator relayed (`p2p_relayed`): its sender's link broke after the early
   * report. It waits in the inbox like a frame from the link and gets the same check when taken.
   */
  relayed(info: RelayedPeerFrame, frame: Uint8Array): void {
    markHop('recv.frame', hopKey(info.kind, info.iteration, info.mb, info.hop));
    this.keep(frameKey(info.kind, info.attempt, info.iteration, info.mb, info.hop), info.from, frame);
  }

  /** Whether the frame a task names (`inputFrom`) is here already (the agent runs such a task first). */
  has(from: InputFrom, attempt: number, iteration: number, mb: number): boolean {
    return this.inbox.has(frameKey(from.kind, attempt, iteration, mb, from.hop));
  }

  /**
   * The input a task names (`inputFrom`), checked as the coordinator checks a relayed frame plus
   * the receiving stage. Rejects with PeerFrameRefused (its reason: a FrameError reason,
   * `missing`, `wrong_peer`).
   */
  async receive(from: InputFrom, attempt: number, iteration: number, mb: number, stage: number, wire: WireEncoding): Promise<{ frame: Uint8Array; got: GotReport }> {
    const key = frameKey(from.kind, attempt, iteration, mb, from.hop);
    if (!this.inbox.has(key)) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, PEER_FRAME_WAIT_MS);
        this.waiters.set(key, () => {
          clearTimeout(t);
          resolve();
        });
      });
      this.waiters.delete(key);
      if (this.cancelled.delete(key)) throw new PeerFrameRefused('abandoned', `the pass of mb ${mb} hop ${from.hop} was abandoned while its frame was awaited`);
    }
    const entry = this.inbox.get(key);
    if (!entry) throw new PeerFrameRefused('missing', `no ${from.kind} frame of mb ${mb} hop ${from.hop} from ${from.peer} within ${PEER_FRAME_WAIT_MS} ms`);
    this.inbox.delete(key);
    this.taken.add(key);
    if (this.kept.size >= MAX_KEPT) this.kept.delete(this.kept.keys().next().value!);
    this.kept.set(key, entry.frame);
    if (entry.from !== from.peer) throw new PeerFrameRefused('wrong_peer', `the frame of mb ${mb} hop ${from.hop} came from ${entry.from}, not ${from.peer}`);
    let norm: number;
    try {
      norm = checkHopFrame(entry.frame, { kind: from.kind, iteration, microbatch: mb, hop: from.hop, fromStage: from.fromStage, toStage: stage, shape: from.shape, wire }, from.maxBytes);
    } catch (e) {
      if (e instanceof FrameError) throw new PeerFrameRefused(e.reason, e.message, await frameDigest(entry.frame));
      throw e;
    }
    return { frame: entry.frame, got: { from: from.peer, digest: await frameDigest(entry.frame), norm } };
  }

  /**
   * The pass was abandoned (or the session is new): a task waiting for its frame stops waiting, so
   * the retry's tasks do not queue behind a frame that may never come (the early report sends a
   * task before its frame has arrived).
   */
  cancelWaits(): void {
    for (const [key, wake] of [...this.waiters]) {
      this.cancelled.add(key);
      wake();
    }
  }

  /** A frame this tab took from a peer, as received (the coordinator's audit). */
  keptFrame(kind: string, attempt: number, iteration: number, mb: number, hop: number): Uint8Array {
    const f = this.kept.get(frameKey(kind, attempt, iteration, mb, hop));
    if (!f) throw new Error(`no ${kind} frame of attempt ${attempt} iteration ${iteration} mb ${mb} hop ${hop} kept`);
    return f.slice();
  }

  /**
   * The iteration stepped: its frames are no longer wanted (the next iteration's tasks, and so
   * its frames, come only after every tab acknowledged its step). An abandoned pass clears
   * nothing: the retry's frames may already be here, and the old attempt's are keyed apart.
   */
  clear(): void {
    this.inbox.clear();
    this.taken.clear();
  }

  close(): void {
    this.links?.closeAll();
    this.links = null;
    this.clear();
    this.kept.clear();
  }
}
