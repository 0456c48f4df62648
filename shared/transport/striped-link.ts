/**
 * The link to one peer as K peer connections ("stripes", `--p2p-stripes K`, docs/p2p.md#striped-frames):
 * each stripe is a PeerLink with its own RTCPeerConnection, so its own SCTP association and its
 * own congestion window. A frame is cut into up to K contiguous parts (no part under
 * MIN_PART_BYTES: a small frame goes whole on stripe 0), part j on stripe j, all at once. After an
 * idle gap each association restarts from a small window; K of them start a frame with K times
 * as much in flight, so a frame needs fewer round trips.
 *
 * - Each part carries a 6-byte header: the frame's sequence number (uint32 LE), its index, and how
 *   many parts the frame has. Stripe j only ever carries part j; every frame has a part on
 *   stripe 0. Stripes are ordered channels and parts are queued in frame order, so the receiver
 *   takes frame n when stripe 0's next part and stripes 1 .. count-1's next parts are all frame
 *   n's; anything else breaks the link ('protocol').
 * - `send` resolves when every part is acknowledged (the whole frame is the peer's), and rejects
 *   with a LinkDownError holding the whole frame if the link goes down first.
 * - The link is open when all K stripes are open, and down as soon as any stripe is down (the
 *   others are closed): one failure, reported once, and every unacknowledged frame comes back.
 */
import type { Signal } from '../protocol/signal.js';
import { LinkProtocolError } from './link-messages.js';
import { LinkDownError, type LinkFailure } from './link-down-error.js';
import type { LinkStats } from './link-stats.js';
import { DEFAULT_PEER_LINK, PeerLink, type FrameReceipt, type LinkState, type PairLink, type PeerLinkOptions } from './peer-link.js';

/** Smallest part a frame is cut into: a frame under 2 x this goes whole on stripe 0. */
export const MIN_PART_BYTES = 16 * 1024;
export const PART_HEADER_BYTES = 6;

/** How many parts a frame of `bytes` is cut into over `stripes` stripes. */
export function partCount(bytes: number, stripes: number): number {
  return Math.max(1, Math.min(stripes, Math.floor(bytes / MIN_PART_BYTES)));
}

export interface StripedLinkEvents {
  onOpen(link: StripedLink): void;
  /** A complete, reassembled frame from the peer: still unchecked. */
  onFrame(link: StripedLink, frame: Uint8Array): void;
  /** Down for good (called once): unacknowledged sends reject with LinkDownError. */
  onDown(link: StripedLink, failure: LinkFailure, detail: string): void;
}

export interface StripedLinkDeps {
  peer: string;
  id: string;
  role: 'offerer' | 'answerer';
  /** 2 .. MAX_STRIPES (signal.ts). */
  stripes: number;
  /** A new RTCPeerConnection for each stripe. */
  createPeerConnection: () => RTCPeerConnection;
  /** Sends a signal to the peer; the stripe's index is already in it. */
  signal: (signal: Signal) => void;
  events: StripedLinkEvents;
  /** Every stripe's PeerLink options; `maxFrameBytes` bounds the reassembled frame. */
  options?: Partial<PeerLinkOptions>;
  now?: () => number;
}

interface Part {
  seq: number;
  count: number;
  data: Uint8Array;
}

const RTT_EWMA = 0.2;

export class StripedLink implements PairLink {
  readonly peer: string;
  readonly role: 'offerer' | 'answerer';
  private _id: string;
  private idTaken = false;
  private readonly stripes: PeerLink[] = [];
  private readonly events: StripedLinkEvents;
  private readonly maxFrameBytes: number;
  private readonly now: () => number;
  private _state: LinkState = 'connecting';
  private failure: LinkFailure | null = null;
  private readonly startedAt: number;
  private openedAt: number | null = null;
  private nextSeq = 0;
  private dueSeq = 0;
  /** Parts received per stripe, not yet reassembled. */
  private readonly parts: Part[][] = [];
  private waitingBytes = 0;
  private inFlight = 0;
  private readonly s = { framesSent: 0, framesReceived: 0, bytesSent: 0, bytesReceived: 0, frameMs: null as number | null, lastFrameMs: null as number | null };

  constructor(deps: StripedLinkDeps) {
    if (!Number.isInteger(deps.stripes) || deps.stripes < 2) throw new Error(`StripedLink: ${deps.stripes} stripes (2 or more)`);
    this.peer = deps.peer;
    this._id = deps.id;
    this.role = deps.role;
    this.events = deps.events;
    this.now = deps.now ?? (() => performance.now());
    this.maxFrameBytes = deps.options?.maxFrameBytes ?? DEFAULT_PEER_LINK.maxFrameBytes;
    this.startedAt = this.now();
    const options = { ...deps.options, maxFrameBytes: this.maxFrameBytes + PART_HEADER_BYTES };
    for (let i = 0; i < deps.stripes; i++) {
      this.parts.push([]);
      this.stripes.push(
        new PeerLink({
          peer: deps.peer,
          id: deps.id,
          role: deps.role,
          pc: deps.createPeerConnection(),
          signal: (s) => deps.signal(s.type === 'offer' || s.type === 'answer' || s.type === 'candidate' ? { ...s, stripe: i } : s),
          options,
          now: deps.now,
          events: {
            onOpen: () => this.stripeOpened(),
            onFrame: (_l, part) => this.partArrived(i, part),
            onDown: (_l, failure, detail) => this.down(failure, `stripe ${i}: ${detail}`),
          },
        }),
      );
    }
  }

  get id(): string {
    return this._id;
  }

  get state(): LinkState {
    return this._state;
  }

  /** Whether any stripe has applied the peer's description. */
  get hasRemoteDescription(): boolean {
    return this.idTaken || this.stripes.some((s) => s.hasRemoteDescription);
  }

  get downReason(): LinkFailure | null {
    return this.failure;
  }

  send(frame: Uint8Array): Promise<FrameReceipt> {
    if (this._state === 'down') return Promise.reject(new LinkDownError(this.peer, this.failure ?? 'closed', 'link is down', [frame]));
    if (frame.byteLength < 1) return Promise.reject(new Error('StripedLink.send: empty frame'));
    const seq = this.nextSeq;
    this.nextSeq = (seq + 1) >>> 0;
    const n = frame.byteLength;
    const count = partCount(n, this.stripes.length);
    const t0 = this.now();
    const sends: Promise<FrameReceipt>[] = [];
    for (let j = 0; j < count; j++) {
      const from = Math.floor((j * n) / count);
      const to = Math.floor(((j + 1) * n) / count);
      const part = new Uint8Array(PART_HEADER_BYTES + to - from);
      const view = new DataView(part.buffer);
      view.setUint32(0, seq, true);
      view.setUint8(4, j);
      view.setUint8(5, count);
      part.set(frame.subarray(from, to), PART_HEADER_BYTES);
      sends.push(this.stripes[j].send(part));
    }
    this.inFlight++;
    return Promise.all(sends).then(
      (receipts) => {
        this.inFlight--;
        const ms = this.now() - t0;
        this.s.framesSent++;
        this.s.bytesSent += n;
        this.s.lastFrameMs = ms;
        this.s.frameMs = this.s.frameMs === null ? ms : this.s.frameMs + RTT_EWMA * (ms - this.s.frameMs);
        const written = receipts.map((r) => r.writtenMs);
        const writtenMs = written.every((w) => w !== undefined) ? Math.max(...(written as number[])) : undefined;
        return { seq, bytes: n, ms, ...(writtenMs !== undefined ? { writtenMs } : {}) };
      },
      (e: unknown) => {
        this.inFlight--;
        if (!(e instanceof LinkDownError)) throw e;
        throw new LinkDownError(this.peer, this.failure ?? e.failure, e.message, [frame]);
      },
    );
  }

  /** A signal for this link: `bye` and `connect` are the pair's, the rest go to their stripe. */
  async handleSignal(signal: Signal): Promise<void> {
    if (this._state === 'down') return;
    if (signal.type === 'bye') return this.down('peer-closed', 'the peer closed the link');
    if (signal.type === 'connect') return;
    const stripe = signal.stripe === undefined ? undefined : this.stripes[signal.stripe];
    if (!stripe) return this.down('signal', `signal ${signal.type} for stripe ${String(signal.stripe)} of ${this.stripes.length}`);
    if (signal.type === 'offer' && this.role === 'answerer') {
      // The first offer names the link; an offer of another id is an older link's: dropped.
      if (!this.idTaken) this._id = signal.link;
      else if (signal.link !== this._id) return;
      this.idTaken = true;
    }
    return stripe.handleSignal(signal);
  }

  close(): void {
    this.down('closed', 'closed locally');
  }

  stats(): LinkStats {
    const each = this.stripes.map((s) => s.stats());
    const sum = (f: (s: LinkStats) => number) => each.reduce((t, s) => t + f(s), 0);
    const rtts = each.map((s) => s.rttMs).filter((r): r is number => r !== null);
    return {
      peer: this.peer,
      state: this._state,
      ...this.s,
      wireBytesSent: sum((s) => s.wireBytesSent),
      wireBytesReceived: sum((s) => s.wireBytesReceived),
      rttMs: rtts.length > 0 ? rtts.reduce((a, b) => a + b, 0) / rtts.length : null,
      openMs: this.openedAt === null ? null : this.openedAt - this.startedAt,
      queuedFrames: Math.max(...each.map((s) => s.queuedFrames)),
      unackedFrames: this.inFlight,
      bufferedBytes: sum((s) => s.bufferedBytes),
    };
  }

  private stripeOpened(): void {
    if (this._state !== 'connecting' || !this.stripes.every((s) => s.state === 'open')) return;
    this._state = 'open';
    this.openedAt = this.now();
    this.events.onOpen(this);
  }

  private partArrived(index: number, bytes: Uint8Array): void {
    if (this._state === 'down') return;
    try {
      if (bytes.byteLength <= PART_HEADER_BYTES) throw new LinkProtocolError(`part of ${bytes.byteLength} bytes on stripe ${index}`);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const part: Part = { seq: view.getUint32(0, true), count: view.getUint8(5), data: bytes.subarray(PART_HEADER_BYTES) };
      const claimed = view.getUint8(4);
      if (claimed !== index || part.count < 1 || part.count > this.stripes.length || index >= part.count) {
        throw new LinkProtocolError(`part ${claimed} of ${part.count} arrived on stripe ${index} of ${this.stripes.length}`);
      }
      this.waitingBytes += part.data.byteLength;
      if (this.waitingBytes > this.maxFrameBytes) throw new LinkProtocolError(`${this.waitingBytes} bytes of parts waiting for their frame (at most ${this.maxFrameBytes})`);
      this.parts[index].push(part);
      this.reassemble();
    } catch (e) {
      if (e instanceof LinkProtocolError) this.down('protocol', e.message);
      else throw e;
    }
  }

  /** Delivers every frame whose parts are all here, in frame order. */
  private reassemble(): void {
    for (;;) {
      const head = this.parts[0][0];
      if (!head) return;
      if (head.seq !== this.dueSeq) throw new LinkProtocolError(`frame ${head.seq} on stripe 0 where frame ${this.dueSeq} was due`);
      const parts = [head];
      for (let j = 1; j < head.count; j++) {
        const p = this.parts[j][0];
        if (!p) return; // still on its way
        if (p.seq !== head.seq || p.count !== head.count) throw new LinkProtocolError(`stripe ${j} holds frame ${p.seq} (${p.count} parts) where frame ${head.seq} (${head.count} parts) was due`);
        parts.push(p);
      }
      const total = parts.reduce((t, p) => t + p.data.byteLength, 0);
      if (total > this.maxFrameBytes) throw new LinkProtocolError(`frame of ${total} bytes (at most ${this.maxFrameBytes})`);
      let frame = head.data;
      if (parts.length > 1) {
        frame = new Uint8Array(total);
        let at = 0;
        for (const p of parts) {
          frame.set(p.data, at);
          at += p.data.byteLength;
        }
      }
      for (let j = 0; j < head.count; j++) this.parts[j].shift();
      this.waitingBytes -= total;
      this.dueSeq = (this.dueSeq + 1) >>> 0;
      this.s.framesReceived++;
      this.s.bytesReceived += total;
      this.events.onFrame(this, frame);
      if (this._state === 'down') return;
    }
  }

  private down(failure: LinkFailure, detail: string): void {
    if (this._state === 'down') return;
    this._state = 'down';
    this.failure = failure;
    for (const p of this.parts) p.length = 0;
    this.waitingBytes = 0;
    // Each stripe's unacknowledged parts reject: their frames' sends reject with this failure.
    for (const s of this.stripes) s.close();
    this.events.onDown(this, failure, detail);
  }
}
