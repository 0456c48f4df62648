/**
 * Every PeerLink of one tab, keyed by peer id: links open on demand when a frame is sent to a
 * peer, and are signalled through an injected `signal(to, message)` (the tab's socket.io
 * connection, relayed by the coordinator) with incoming signals passed to `handleSignal`.
 *
 * Who offers: the lower peer id (string order) always creates the offer; the higher one asks for
 * it with a `connect` signal. So two tabs that want a link at once (activations one way,
 * gradients the other) never both offer; a `connect` that crosses an offer in flight is ignored.
 * A peer that sends a fresh offer replaces its old link (it restarted or saw the link break).
 * Signals of other link ids (an older link) are dropped; malformed ones are rejected.
 *
 * With `stripes` K > 1 each pair's link is a StripedLink of K peer connections (striped-link.ts):
 * offers, answers and candidates then carry a stripe index 0 .. K-1, which is checked here (a
 * missing or out-of-range index, or one in a run without stripes, is rejected like any bad signal).
 */
import { isStripeCount, MAX_STRIPES, parseSignal, type Signal } from '../protocol/signal.js';
import { LinkDownError, type LinkFailure } from './link-down-error.js';
import type { LinkStats } from './link-stats.js';
import { PeerLink, type FrameReceipt, type PairLink, type PeerLinkOptions } from './peer-link.js';
import { StripedLink } from './striped-link.js';

export interface PeerLinksEvents {
  /** A complete, still unchecked frame from `peer`. */
  onFrame(peer: string, frame: Uint8Array): void;
  onLinkUp?(peer: string, link: PairLink): void;
  /** The link to `peer` went down: its unacknowledged sends reject with LinkDownError. */
  onLinkDown?(peer: string, failure: LinkFailure, detail: string): void;
  /** A signal from `from` was malformed or not allowed. */
  onSignalRejected?(from: string, message: string): void;
}

export interface PeerLinksDeps {
  /** This tab's peer id (as the coordinator names it). */
  self: string;
  /** Sends `signal` to peer `to` through the coordinator. */
  signal: (to: string, signal: Signal) => void;
  /** `new RTCPeerConnection(config)`: the browser's own, or node-datachannel/polyfill's. */
  createPeerConnection: (config: RTCConfiguration) => RTCPeerConnection;
  /** ICE servers (STUN, TURN with credentials) and iceTransportPolicy. */
  rtcConfig?: RTCConfiguration;
  linkOptions?: Partial<PeerLinkOptions>;
  events: PeerLinksEvents;
  /** Peers this tab accepts links from (default: any the coordinator forwards). */
  acceptFrom?: (peer: string) => boolean;
  /** Most links at once (default 32; each of `stripes` connections): a stranger cannot make a tab open connections without end. */
  maxLinks?: number;
  /** Peer connections per link, 1 .. MAX_STRIPES (default 1: one PeerLink per pair). */
  stripes?: number;
}

/** A random link id (16 characters of base64url). */
export function newLinkId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_');
}

export class PeerLinks {
  private readonly deps: PeerLinksDeps;
  private readonly links = new Map<string, PairLink>();
  private readonly maxLinks: number;
  private readonly stripes: number;
  private rtcConfig: RTCConfiguration | undefined;

  constructor(deps: PeerLinksDeps) {
    this.deps = deps;
    this.maxLinks = deps.maxLinks ?? 32;
    this.stripes = deps.stripes ?? 1;
    if (!isStripeCount(this.stripes)) throw new Error(`PeerLinks: ${this.stripes} stripes (1 .. ${MAX_STRIPES})`);
    this.rtcConfig = deps.rtcConfig;
  }

  /** Links opened from now on use `c` (e.g. renewed TURN credentials); open links keep theirs. */
  setRtcConfig(c: RTCConfiguration): void {
    this.rtcConfig = c;
  }

  /** Sends `frame` to `peer`, opening a link first if there is none. Rejects with LinkDownError. */
  send(peer: string, frame: Uint8Array): Promise<FrameReceipt> {
    let link: PairLink;
    try {
      link = this.open(peer);
    } catch (e) {
      return Promise.reject(new LinkDownError(peer, 'closed', (e as Error).message, [frame]));
    }
    return link.send(frame);
  }

  /** The link to `peer`, opened if there is none (or the last one is down). */
  open(peer: string): PairLink {
    if (peer === this.deps.self) throw new Error('PeerLinks: no link to oneself');
    const have = this.links.get(peer);
    if (have && have.state !== 'down') return have;
    const id = newLinkId();
    if (this.deps.self < peer) return this.create(peer, id, 'offerer');
    const link = this.create(peer, id, 'answerer');
    this.deps.signal(peer, { type: 'connect', link: id });
    return link;
  }

  /** The current link to `peer`, if any. */
  link(peer: string): PairLink | undefined {
    return this.links.get(peer);
  }

  /** A signal relayed from `from`: validated here, never trusted. */
  handleSignal(from: string, raw: unknown): void {
    const parsed = parseSignal(raw);
    if (!parsed.ok) return this.reject(from, parsed.message);
    if (from === this.deps.self) return this.reject(from, 'signal from oneself');
    if (this.deps.acceptFrom && !this.deps.acceptFrom(from)) return this.reject(from, `no link allowed with ${from}`);
    const signal = parsed.signal;
    const stripeProblem = this.stripeProblem(signal);
    if (stripeProblem) return this.reject(from, stripeProblem);
    const have = this.links.get(from);
    const live = have && have.state !== 'down' ? have : undefined;
    switch (signal.type) {
      case 'connect':
        if (this.deps.self > from) return this.reject(from, 'connect from a peer whose id is lower: it offers itself');
        if (live?.state === 'connecting') return; // our offer is on its way
        live?.close();
        this.create(from, signal.link, 'offerer');
        return;
      case 'offer':
        if (this.deps.self < from) return this.reject(from, 'offer from a peer whose id is higher: this side offers');
        if (live && live.role === 'answerer' && !live.hasRemoteDescription) return void live.handleSignal(signal);
        if (live?.id === signal.link) return void live.handleSignal(signal); // a repeated offer: the link rejects it
        live?.close();
        return void this.create(from, signal.link, 'answerer').handleSignal(signal);
      case 'candidate':
        if (live && (live.id === signal.link || (live.role === 'answerer' && !live.hasRemoteDescription))) void live.handleSignal(signal);
        return;
      case 'answer':
      case 'bye':
        if (live?.id === signal.link) void live.handleSignal(signal);
        return;
    }
  }

  /** Closes the link to `peer` and tells the peer. */
  close(peer: string): void {
    const link = this.links.get(peer);
    if (!link) return;
    if (link.state !== 'down') this.deps.signal(peer, { type: 'bye', link: link.id });
    link.close();
  }

  closeAll(): void {
    for (const peer of [...this.links.keys()]) this.close(peer);
  }

  stats(): LinkStats[] {
    return [...this.links.values()].map((l) => l.stats());
  }

  /** Why `signal`'s stripe index does not fit this tab's links (undefined: it fits). */
  private stripeProblem(signal: Signal): string | undefined {
    if (signal.type !== 'offer' && signal.type !== 'answer' && signal.type !== 'candidate') return undefined;
    if (this.stripes === 1) return signal.stripe === undefined ? undefined : `${signal.type} for stripe ${signal.stripe}, but links here are not striped`;
    if (signal.stripe === undefined) return `${signal.type} without a stripe index (links here have ${this.stripes} stripes)`;
    return signal.stripe < this.stripes ? undefined : `${signal.type} for stripe ${signal.stripe} of ${this.stripes}`;
  }

  private create(peer: string, id: string, role: 'offerer' | 'answerer'): PairLink {
    const live = [...this.links.values()].filter((l) => l.state !== 'down').length;
    if (live >= this.maxLinks) throw new Error(`PeerLinks: at most ${this.maxLinks} links`);
    const rtcConfig = { ...this.rtcConfig };
    const events = this.deps.events;
    const linkEvents = {
      onOpen: (l: PairLink) => events.onLinkUp?.(peer, l),
      onFrame: (_l: PairLink, frame: Uint8Array) => events.onFrame(peer, frame),
      onDown: (l: PairLink, failure: LinkFailure, detail: string) => {
        if (this.links.get(peer) === l) this.links.delete(peer);
        events.onLinkDown?.(peer, failure, detail);
      },
    };
    const common = { peer, id, role, signal: (s: Signal) => this.deps.signal(peer, s), options: this.deps.linkOptions, events: linkEvents };
    const link: PairLink =
      this.stripes === 1
        ? new PeerLink({ ...common, pc: this.deps.createPeerConnection(rtcConfig) })
        : new StripedLink({ ...common, stripes: this.stripes, createPeerConnection: () => this.deps.createPeerConnection({ ...rtcConfig }) });
    this.links.set(peer, link);
    return link;
  }

  private reject(from: string, message: string): void {
    this.deps.events.onSignalRejected?.(from, message);
  }
}
