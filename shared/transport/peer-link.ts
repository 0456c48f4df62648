/**
 * One link to one peer tab: an RTCPeerConnection with one ordered, reliable RTCDataChannel that
 * carries binary frames both ways (issue 23). Browser and Node alike: the RTCPeerConnection is
 * handed in (a browser's own, or node-datachannel's polyfill in Node volunteers).
 *
 * - Frames are cut into chunks no larger than the channel's message size (link-messages.ts) and
 *   rebuilt and checked on arrival (frame-assembler.ts); complete frames go to `onFrame`.
 * - Backpressure: chunks are handed to the channel only while its `bufferedAmount` is under
 *   `highWaterBytes`; sending resumes on `bufferedamountlow` (threshold `lowWaterBytes`).
 * - Each frame is acknowledged by the receiver once complete: `send` resolves with the frame's
 *   time from enqueue to acknowledgement, and rejects with a LinkDownError holding the frame if
 *   the link goes down first, so the caller can send that frame another way (the relay).
 * - The link pings its peer: round-trip time is measured, and a peer not heard from for
 *   `silenceTimeoutMs` is declared gone. A link not open within `openTimeoutMs` fails.
 * - Every failure is reported once through `onDown` with a LinkFailure: the fallback signal.
 */
import type { Signal } from '../protocol/signal.js';
import { FrameAssembler } from './frame-assembler.js';
import { LinkProtocolError, CHUNK_HEADER_BYTES, decodeLinkMessage, encodeAck, encodeMore, encodePing, encodeStart } from './link-messages.js';
import type { LinkStats } from './link-stats.js';
import { LinkDownError, type LinkFailure } from './link-down-error.js';

export interface PeerLinkOptions {
  /** A link not open this long after it was started fails with 'open-timeout'. */
  openTimeoutMs: number;
  /** An open link that hears nothing from its peer this long fails with 'silent'. */
  silenceTimeoutMs: number;
  /** How often an open link pings its peer. */
  pingIntervalMs: number;
  /** Largest frame accepted from the peer (a larger declared frame breaks the link). */
  maxFrameBytes: number;
  /** Largest data-channel message sent (further capped by the channel's max message size). */
  chunkBytes: number;
  /** Stop handing chunks to the channel while its bufferedAmount is above this. */
  highWaterBytes: number;
  /** bufferedAmountLowThreshold: sending resumes when the buffer drains to this. */
  lowWaterBytes: number;
}

export const DEFAULT_PEER_LINK: PeerLinkOptions = {
  openTimeoutMs: 5000,
  silenceTimeoutMs: 5000,
  pingIntervalMs: 1000,
  maxFrameBytes: 64 * 1024 * 1024,
  chunkBytes: 64 * 1024,
  highWaterBytes: 4 * 1024 * 1024,
  lowWaterBytes: 1024 * 1024,
};

export type LinkState = 'connecting' | 'open' | 'down';

export interface FrameReceipt {
  seq: number;
  bytes: number;
  /** Milliseconds from `send` to the peer's acknowledgement of the complete frame. */
  ms: number;
  /** Milliseconds from `send` until the frame's last chunk was handed to the data channel. */
  writtenMs?: number;
}

/**
 * What PeerLinks needs of the link to one peer: a PeerLink (one peer connection), or a
 * StripedLink (K of them, `--p2p-stripes`). The same rules hold for both: `send` resolves when
 * the peer acknowledged the whole frame, and rejects with a LinkDownError holding the frame if
 * the link goes down first.
 */
export interface PairLink {
  readonly peer: string;
  readonly id: string;
  readonly role: 'offerer' | 'answerer';
  readonly state: LinkState;
  readonly hasRemoteDescription: boolean;
  readonly downReason: LinkFailure | null;
  send(frame: Uint8Array): Promise<FrameReceipt>;
  /** A signal for this link (validated by signal.ts, its stripe index checked by PeerLinks). */
  handleSignal(signal: Signal): Promise<void>;
  close(): void;
  stats(): LinkStats;
}

export interface PeerLinkEvents {
  onOpen(link: PeerLink): void;
  /** A complete frame from the peer: still unchecked (the receiver runs its frame checks). */
  onFrame(link: PeerLink, frame: Uint8Array): void;
  /** The link is down for good (called once); unacknowledged sends reject with LinkDownError. */
  onDown(link: PeerLink, failure: LinkFailure, detail: string): void;
}

export interface PeerLinkDeps {
  peer: string;
  /** This link's id (signal.ts linkIdSchema), chosen by the side that opens it. */
  id: string;
  /** The offerer creates the offer; the answerer waits for it. */
  role: 'offerer' | 'answerer';
  pc: RTCPeerConnection;
  /** Sends a signal to this link's peer (through the coordinator). */
  signal: (signal: Signal) => void;
  events: PeerLinkEvents;
  options?: Partial<PeerLinkOptions>;
  now?: () => number;
}

interface Outgoing {
  seq: number;
  frame: Uint8Array;
  offset: number;
  queuedAt: number;
  writtenAt?: number;
  resolve: (r: FrameReceipt) => void;
  reject: (e: Error) => void;
}

const RTT_EWMA = 0.2;
const CHANNEL_LABEL = 'frames';

export class PeerLink implements PairLink {
  readonly peer: string;
  private _id: string;
  readonly role: 'offerer' | 'answerer';
  private readonly pc: RTCPeerConnection;
  private readonly signal: (signal: Signal) => void;
  private readonly events: PeerLinkEvents;
  private readonly opts: PeerLinkOptions;
  private readonly now: () => number;
  private readonly assembler: FrameAssembler;
  private channel: RTCDataChannel | null = null;
  private _state: LinkState = 'connecting';
  private failure: LinkFailure | null = null;
  private readonly startedAt: number;
  private openedAt: number | null = null;
  private lastHeard = 0;
  private nextSeq = 0;
  private nextPing = 0;
  private readonly queue: Outgoing[] = [];
  private readonly awaitingAck = new Map<number, Outgoing>();
  private remoteSet = false;
  /** Offerer: the channel is open, the answerer has not spoken yet. */
  private channelOpen = false;
  /** Local candidates held back until our offer or answer is sent (then null). */
  private localCandidates: Signal[] | null = [];
  private readonly pendingCandidates: RTCIceCandidateInit[] = [];
  private openTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private readonly s = { framesSent: 0, framesReceived: 0, bytesSent: 0, bytesReceived: 0, wireBytesSent: 0, wireBytesReceived: 0, rttMs: null as number | null, frameMs: null as number | null, lastFrameMs: null as number | null };

  constructor(deps: PeerLinkDeps) {
    this.peer = deps.peer;
    this._id = deps.id;
    this.role = deps.role;
    this.pc = deps.pc;
    this.signal = deps.signal;
    this.events = deps.events;
    this.opts = { ...DEFAULT_PEER_LINK, ...deps.options };
    this.now = deps.now ?? (() => performance.now());
    this.assembler = new FrameAssembler(this.opts.maxFrameBytes);
    this.startedAt = this.now();
    this.openTimer = setTimeout(() => this.down('open-timeout', `not open after ${this.opts.openTimeoutMs} ms`), this.opts.openTimeoutMs);
    this.pc.onicecandidate = (e) => {
      if (!e.candidate || this._state === 'down') return;
      const c = e.candidate;
      // Browsers write "candidate:...", libdatachannel the SDP attribute line "a=candidate:...".
      const line = c.candidate.startsWith('a=') ? c.candidate.slice(2) : c.candidate;
      const signal: Signal = { type: 'candidate', link: this.id, candidate: line, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null };
      // A candidate may be gathered before the offer or answer went out: it must not overtake it.
      if (this.localCandidates) this.localCandidates.push(signal);
      else this.signal(signal);
    };
    this.pc.onconnectionstatechange = () => {
      const st = this.pc.connectionState;
      if (st === 'failed') this.down('ice-failed', 'the peer connection failed (no ICE candidate pair works)');
      else if (st === 'closed') this.down('peer-closed', 'the peer connection closed');
    };
    if (this.role === 'offerer') {
      this.attach(this.pc.createDataChannel(CHANNEL_LABEL, { ordered: true }));
      void this.offer();
    } else {
      // The answerer takes the offerer's one channel; creating its own would renegotiate.
      this.pc.ondatachannel = (e) => {
        if (this.channel || e.channel.label !== CHANNEL_LABEL || !e.channel.ordered) {
          e.channel.close();
          return this.down('protocol', `unexpected data channel "${e.channel.label.slice(0, 40)}"`);
        }
        this.attach(e.channel);
      };
    }
  }

  /** This link's id; an answerer takes the id of the first offer it accepts. */
  get id(): string {
    return this._id;
  }

  /** Whether the peer's description (offer or answer) has been applied. */
  get hasRemoteDescription(): boolean {
    return this.remoteSet;
  }

  get state(): LinkState {
    return this._state;
  }

  /** Why the link went down (null while it is up). */
  get downReason(): LinkFailure | null {
    return this.failure;
  }

  /** Queues `frame` for the peer; resolves when the peer has it complete. */
  send(frame: Uint8Array): Promise<FrameReceipt> {
    if (this._state === 'down') return Promise.reject(new LinkDownError(this.peer, this.failure ?? 'closed', 'link is down', [frame]));
    if (frame.byteLength < 1) return Promise.reject(new Error('PeerLink.send: empty frame'));
    return new Promise((resolve, reject) => {
      this.queue.push({ seq: this.nextSeq, frame, offset: 0, queuedAt: this.now(), resolve, reject });
      this.nextSeq = (this.nextSeq + 1) >>> 0;
      this.pump();
    });
  }

  /** A signal from this link's peer (already validated by signal.ts, and for this link id). */
  async handleSignal(signal: Signal): Promise<void> {
    if (this._state === 'down') return;
    try {
      switch (signal.type) {
        case 'offer':
          if (this.role !== 'answerer' || this.remoteSet) throw new Error('unexpected offer');
          this._id = signal.link;
          await this.pc.setRemoteDescription({ type: 'offer', sdp: signal.sdp });
          this.remoteSet = true;
          await this.flushCandidates();
          const answer = await this.pc.createAnswer();
          await this.pc.setLocalDescription(answer);
          if (this.state === 'down') return;
          this.signal({ type: 'answer', link: this.id, sdp: answer.sdp ?? '' });
          this.releaseCandidates();
          break;
        case 'answer':
          if (this.role !== 'offerer' || this.remoteSet) throw new Error('unexpected answer');
          await this.pc.setRemoteDescription({ type: 'answer', sdp: signal.sdp });
          this.remoteSet = true;
          await this.flushCandidates();
          break;
        case 'candidate': {
          const init: RTCIceCandidateInit = { candidate: signal.candidate, sdpMid: signal.sdpMid, sdpMLineIndex: signal.sdpMLineIndex };
          if (this.remoteSet) await this.addCandidate(init);
          else if (this.pendingCandidates.length < 64) this.pendingCandidates.push(init);
          break;
        }
        case 'bye':
          this.down('peer-closed', 'the peer closed the link');
          break;
        case 'connect':
          break;
      }
    } catch (e) {
      this.down('signal', `signal ${signal.type} rejected: ${(e as Error).message}`);
    }
  }

  /** Closes the link on purpose; pending sends reject with 'closed'. */
  close(): void {
    this.down('closed', 'closed locally');
  }

  stats(): LinkStats {
    return {
      peer: this.peer,
      state: this._state,
      ...this.s,
      openMs: this.openedAt === null ? null : this.openedAt - this.startedAt,
      queuedFrames: this.queue.length,
      unackedFrames: this.queue.length + this.awaitingAck.size,
      bufferedBytes: this.channel && this._state === 'open' ? this.channel.bufferedAmount : 0,
    };
  }

  private async offer(): Promise<void> {
    try {
      const offer = await this.pc.createOffer();
      await this.pc.setLocalDescription(offer);
      if (this._state === 'down') return;
      this.signal({ type: 'offer', link: this.id, sdp: offer.sdp ?? '' });
      this.releaseCandidates();
    } catch (e) {
      this.down('signal', `could not create an offer: ${(e as Error).message}`);
    }
  }

  private releaseCandidates(): void {
    const held = this.localCandidates ?? [];
    this.localCandidates = null;
    for (const c of held) this.signal(c);
  }

  private async flushCandidates(): Promise<void> {
    for (const c of this.pendingCandidates.splice(0)) await this.addCandidate(c);
  }

  /**
   * addIceCandidate, retried a few times on libdatachannel's "without ICE transport": right after
   * the offerer applied the answer, node-datachannel 0.33.4 sometimes has not set up its ICE
   * transport yet (seen in about 1 run in 2 of coordinator/tests/p2p.test.ts with 4 tabs; the
   * link failed with `signal` and its frames went through the relay). Browsers never throw this.
   */
  private async addCandidate(init: RTCIceCandidateInit): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.pc.addIceCandidate(init);
      } catch (e) {
        if (attempt >= 20 || !/without ICE transport/.test((e as Error).message) || this._state === 'down') throw e;
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  }

  private attach(channel: RTCDataChannel): void {
    this.channel = channel;
    channel.binaryType = 'arraybuffer';
    channel.bufferedAmountLowThreshold = this.opts.lowWaterBytes;
    // The offerer sends nothing until the answerer has spoken: node-datachannel can reorder the
    // first messages that reach an announced channel before its handlers are attached (measured:
    // a burst sent at open arrived out of order about one run in three), and a browser peer may
    // be just as early. The answerer's first ping is its hello.
    channel.onopen = () => (this.role === 'answerer' ? this.opened() : (this.channelOpen = true));
    channel.onclose = () => this.down('peer-closed', 'the data channel closed');
    channel.onerror = (e) => this.down('peer-closed', `data channel error: ${(e as RTCErrorEvent).error?.message ?? 'unknown'}`);
    channel.onbufferedamountlow = () => this.pump();
    channel.onmessage = (e) => this.received(e.data);
    // A channel announced by the peer may already be open (Chromium fires no open event then).
    if (this.role === 'answerer' && channel.readyState === 'open') this.opened();
  }

  private opened(): void {
    if (this._state !== 'connecting') return;
    this._state = 'open';
    this.openedAt = this.lastHeard = this.now();
    this.clearOpenTimer();
    this.pingTimer = setInterval(() => this.heartbeat(), this.opts.pingIntervalMs);
    if (this.role === 'answerer') this.write(encodePing('ping', this.nextPing++ >>> 0, this.now()));
    this.events.onOpen(this);
    this.pump();
  }

  private heartbeat(): void {
    if (this._state !== 'open') return;
    const silent = this.now() - this.lastHeard;
    if (silent > this.opts.silenceTimeoutMs) {
      this.down('silent', `nothing heard from the peer for ${Math.round(silent)} ms`);
      return;
    }
    this.write(encodePing('ping', this.nextPing++ >>> 0, this.now()));
  }

  /** Largest frame bytes in one chunk: the channel's message size less the chunk header. */
  private chunkPayload(): number {
    const max = this.pc.sctp?.maxMessageSize;
    const limit = max && max > 0 && Number.isFinite(max) ? Math.min(max, this.opts.chunkBytes) : this.opts.chunkBytes;
    return Math.max(1024, limit - CHUNK_HEADER_BYTES);
  }

  private pump(): void {
    if (this._state !== 'open' || !this.channel) return;
    const payload = this.chunkPayload();
    while (this.queue.length > 0 && this.channel.bufferedAmount <= this.opts.highWaterBytes) {
      const out = this.queue[0];
      const end = Math.min(out.offset + payload, out.frame.byteLength);
      const piece = out.frame.subarray(out.offset, end);
      if (!this.write(out.offset === 0 ? encodeStart(out.seq, out.frame.byteLength, piece) : encodeMore(out.seq, out.offset, piece))) return;
      out.offset = end;
      if (end === out.frame.byteLength) {
        out.writtenAt = this.now();
        this.queue.shift();
        this.awaitingAck.set(out.seq, out);
      }
    }
  }

  private write(msg: Uint8Array): boolean {
    try {
      this.channel!.send(msg as Uint8Array<ArrayBuffer>);
      this.s.wireBytesSent += msg.byteLength;
      return true;
    } catch (e) {
      this.down('peer-closed', `send failed: ${(e as Error).message}`);
      return false;
    }
  }

  private received(data: unknown): void {
    if (this._state === 'connecting' && this.channelOpen) this.opened(); // the answerer's hello
    if (this._state !== 'open') return;
    this.lastHeard = this.now();
    let bytes: Uint8Array;
    if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    else return this.down('protocol', 'peer sent a text message');
    this.s.wireBytesReceived += bytes.byteLength;
    try {
      const msg = decodeLinkMessage(bytes);
      switch (msg.type) {
        case 'start':
        case 'more': {
          const done = msg.type === 'start' ? this.assembler.start(msg.seq, msg.totalBytes, msg.data) : this.assembler.more(msg.seq, msg.offset, msg.data);
          if (done) {
            this.s.framesReceived++;
            this.s.bytesReceived += done.bytes.byteLength;
            this.write(encodeAck(done.seq));
            this.events.onFrame(this, done.bytes);
          }
          break;
        }
        case 'ack': {
          const out = this.awaitingAck.get(msg.seq);
          if (!out) throw new LinkProtocolError(`ack for frame ${msg.seq}, which is not awaiting one`);
          this.awaitingAck.delete(msg.seq);
          const ms = this.now() - out.queuedAt;
          this.s.framesSent++;
          this.s.bytesSent += out.frame.byteLength;
          this.s.lastFrameMs = ms;
          this.s.frameMs = this.s.frameMs === null ? ms : this.s.frameMs + RTT_EWMA * (ms - this.s.frameMs);
          out.resolve({ seq: out.seq, bytes: out.frame.byteLength, ms, ...(out.writtenAt !== undefined ? { writtenMs: out.writtenAt - out.queuedAt } : {}) });
          break;
        }
        case 'ping':
          this.write(encodePing('pong', msg.id, msg.sentAt));
          break;
        case 'pong': {
          const rtt = this.now() - msg.sentAt;
          if (rtt >= 0) this.s.rttMs = this.s.rttMs === null ? rtt : this.s.rttMs + RTT_EWMA * (rtt - this.s.rttMs);
          break;
        }
      }
    } catch (e) {
      if (e instanceof LinkProtocolError) this.down('protocol', e.message);
      else throw e;
    }
  }

  private clearOpenTimer(): void {
    if (this.openTimer !== null) clearTimeout(this.openTimer);
    this.openTimer = null;
  }

  private down(failure: LinkFailure, detail: string): void {
    if (this._state === 'down') return;
    this._state = 'down';
    this.failure = failure;
    this.clearOpenTimer();
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    this.pingTimer = null;
    const unacked = [...this.awaitingAck.values(), ...this.queue.splice(0)].sort((a, b) => a.seq - b.seq);
    this.awaitingAck.clear();
    if (this.channel) {
      this.channel.onclose = this.channel.onmessage = this.channel.onbufferedamountlow = this.channel.onopen = this.channel.onerror = null;
    }
    this.pc.onicecandidate = null;
    this.pc.onconnectionstatechange = null;
    this.pc.ondatachannel = null;
    try {
      this.channel?.close();
      this.pc.close();
    } catch {
      // already closed
    }
    for (const out of unacked) out.reject(new LinkDownError(this.peer, failure, detail, [out.frame]));
    this.events.onDown(this, failure, detail);
  }
}
