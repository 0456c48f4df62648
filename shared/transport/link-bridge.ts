/**
 * PeerLinks across a postMessage boundary (issue 23): Chromium has no RTCPeerConnection in a
 * dedicated Web Worker, where the volunteer agent runs, so the page owns the links (`LinkHost`,
 * a real PeerLinks) and the worker talks to them through `BridgedLinks`, which offers the agent
 * the same `FrameLinks` surface. Frames cross as transferable buffers. Neither side trusts the
 * other more than it trusts itself: the worker still validates every signal's shape (PeerLinks
 * on the page parses it) and checks every frame it takes (shared/volunteer/peer-frames.ts).
 */
import type { Signal } from '../protocol/signal.js';
import { LinkDownError, type LinkFailure } from './link-down-error.js';
import type { FrameReceipt } from './peer-link.js';
import { PeerLinks, type PeerLinksEvents } from './peer-links.js';
import type { LinkStats } from './link-stats.js';

/** What the volunteer agent needs of its links (PeerLinks, or BridgedLinks in a worker). */
export interface FrameLinks {
  send(peer: string, frame: Uint8Array): Promise<FrameReceipt>;
  handleSignal(from: string, raw: unknown): void;
  setRtcConfig(c: RTCConfiguration): void;
  closeAll(): void;
  /** What each link measured (BridgedLinks: the page's last answer, at most one call old). */
  stats(): LinkStats[];
}

export interface FrameLinksDeps {
  self: string;
  rtcConfig: RTCConfiguration;
  /** Peer connections per link (PeerLinksDeps.stripes; default 1). */
  stripes?: number;
  signal: (to: string, signal: Signal) => void;
  events: PeerLinksEvents;
}

/** Worker -> page. */
export type LinkRequest =
  | { op: 'open'; self: string; rtcConfig: RTCConfiguration; stripes?: number }
  | { op: 'rtc'; rtcConfig: RTCConfiguration }
  | { op: 'signal'; from: string; signal: unknown }
  | { op: 'send'; id: number; peer: string; frame: Uint8Array }
  | { op: 'stats' }
  | { op: 'close' };

/** Page -> worker. */
export type LinkEvent =
  | { op: 'signal'; to: string; signal: Signal }
  | { op: 'sent'; id: number; receipt: FrameReceipt }
  | { op: 'failed'; id: number; peer: string; failure: LinkFailure; detail: string }
  | { op: 'frame'; from: string; frame: Uint8Array }
  | { op: 'down'; peer: string; failure: LinkFailure; detail: string }
  | { op: 'rejected'; from: string; message: string }
  | { op: 'stats'; links: LinkStats[] };

/** The worker's side: FrameLinks whose links live on the page. */
export class BridgedLinks implements FrameLinks {
  private nextId = 1;
  private pending = new Map<number, { resolve: (r: FrameReceipt) => void; reject: (e: Error) => void; frame: Uint8Array }>();
  private lastStats: LinkStats[] = [];

  constructor(private post: (r: LinkRequest, transfer?: ArrayBuffer[]) => void, private deps: FrameLinksDeps) {
    post({ op: 'open', self: deps.self, rtcConfig: deps.rtcConfig, ...(deps.stripes !== undefined ? { stripes: deps.stripes } : {}) });
  }

  send(peer: string, frame: Uint8Array): Promise<FrameReceipt> {
    const id = this.nextId++;
    return new Promise<FrameReceipt>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, frame });
      // A copy crosses (the caller may keep its frame for the relay fallback).
      const copy = frame.slice();
      this.post({ op: 'send', id, peer, frame: copy }, [copy.buffer as ArrayBuffer]);
    });
  }

  handleSignal(from: string, raw: unknown): void {
    this.post({ op: 'signal', from, signal: raw });
  }

  setRtcConfig(c: RTCConfiguration): void {
    this.post({ op: 'rtc', rtcConfig: c });
  }

  /** The page's last stats, and a request for fresh ones (the agent asks once per step). */
  stats(): LinkStats[] {
    this.post({ op: 'stats' });
    return this.lastStats;
  }

  closeAll(): void {
    this.post({ op: 'close' });
    for (const p of this.pending.values()) p.reject(new LinkDownError('?', 'closed', 'links closed', [p.frame]));
    this.pending.clear();
  }

  /** A message from the page. */
  handle(e: LinkEvent): void {
    const { events } = this.deps;
    switch (e.op) {
      case 'signal':
        return this.deps.signal(e.to, e.signal);
      case 'sent':
      case 'failed': {
        const p = this.pending.get(e.id);
        if (!p) return;
        this.pending.delete(e.id);
        if (e.op === 'sent') p.resolve(e.receipt);
        else p.reject(new LinkDownError(e.peer, e.failure, e.detail, [p.frame]));
        return;
      }
      case 'frame':
        return events.onFrame(e.from, e.frame);
      case 'down':
        return events.onLinkDown?.(e.peer, e.failure, e.detail);
      case 'rejected':
        return events.onSignalRejected?.(e.from, e.message);
      case 'stats':
        this.lastStats = e.links;
        return;
    }
  }
}

/** The page's side: one PeerLinks with the page's own RTCPeerConnection, driven by the worker. */
export class LinkHost {
  private links: PeerLinks | null = null;

  constructor(private post: (e: LinkEvent, transfer?: ArrayBuffer[]) => void, private createPeerConnection: (c: RTCConfiguration) => RTCPeerConnection) {}

  handle(r: LinkRequest): void {
    switch (r.op) {
      case 'open':
        this.links?.closeAll();
        this.links = new PeerLinks({
          self: r.self,
          signal: (to, signal) => this.post({ op: 'signal', to, signal }),
          createPeerConnection: this.createPeerConnection,
          rtcConfig: r.rtcConfig,
          stripes: r.stripes,
          events: {
            onFrame: (from, frame) => this.post({ op: 'frame', from, frame }, [frame.buffer as ArrayBuffer]),
            onLinkDown: (peer, failure, detail) => this.post({ op: 'down', peer, failure, detail }),
            onSignalRejected: (from, message) => this.post({ op: 'rejected', from, message }),
          },
        });
        return;
      case 'rtc':
        return this.links?.setRtcConfig(r.rtcConfig);
      case 'signal':
        return this.links?.handleSignal(r.from, r.signal);
      case 'send': {
        const links = this.links;
        if (!links) return this.post({ op: 'failed', id: r.id, peer: r.peer, failure: 'closed', detail: 'no links open' });
        links.send(r.peer, r.frame).then(
          (receipt) => this.post({ op: 'sent', id: r.id, receipt }),
          (e: unknown) => {
            const err = e instanceof LinkDownError ? e : null;
            this.post({ op: 'failed', id: r.id, peer: r.peer, failure: err?.failure ?? 'closed', detail: (e as Error).message });
          },
        );
        return;
      }
      case 'stats':
        return this.post({ op: 'stats', links: this.links?.stats() ?? [] });
      case 'close':
        this.links?.closeAll();
        this.links = null;
        return;
    }
  }

  close(): void {
    this.links?.closeAll();
    this.links = null;
  }
}
