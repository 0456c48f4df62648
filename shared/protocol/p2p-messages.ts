/**
 * What the coordinator and a tab say to each other about peer-to-peer frames (issue 23,
 * docs/p2p.md): the transport mode and ICE servers a tab gets, where a task's output goes and
 * where its input comes from, and what sender and receiver report of each frame that went
 * straight between them. The frames themselves travel over WebRTC (shared/transport).
 */
import { z } from 'zod';
import { LINK_FAILURES } from '../transport/link-down-error.js';
import { FRAME_DIGEST_CHARS } from '../transport/frame-digest.js';
import { isStripeCount, MAX_STRIPES, peerIdSchema } from './signal.js';

export const TRANSPORTS = ['relay', 'p2p', 'auto'] as const;
/** relay: every frame through the coordinator; p2p: straight to the next tab, a failed frame through the relay; auto: p2p, and a failing pair goes relay-only for a back-off. */
export type Transport = (typeof TRANSPORTS)[number];

/** Coordinator -> tab after `welcome`: how to open links (absent / relay: never). */
export interface P2pConfig {
  transport: Transport;
  /** ICE servers (TURN entries with credentials minted for this tab), iceTransportPolicy. */
  rtc: RTCConfiguration;
  /** `--p2p-stripes`: peer connections per link, 2 .. 8 (absent: 1). The tab checks it (stripesOf). */
  stripes?: number;
}

/** The stripes a `p2p_config` asks for, checked: 1 .. MAX_STRIPES, else an error naming it. */
export function stripesOf(c: { stripes?: unknown }): number {
  const k = c.stripes === undefined ? 1 : c.stripes;
  if (!isStripeCount(k)) throw new Error(`p2p_config stripes ${String(k).slice(0, 20)}: expected an integer 1 .. ${MAX_STRIPES}`);
  return k;
}

/** A task's output goes to this peer (the replica the scheduler chose for the next hop). */
export interface SendTo {
  peer: string;
  /** The receiving stage (written into the frame's header; the receiver checks it). */
  stage: number;
}

/** A task's input arrives from this peer: the frame the receiver must find and check. */
export interface InputFrom {
  peer: string;
  kind: 'act' | 'grad';
  /** The frame's hop (the sender's hop index in the forward path). */
  hop: number;
  fromStage: number;
  /** `[batch, seq, d_model]` */
  shape: number[];
  maxBytes: number;
}

/** Reasons a frame meant for a peer went through the relay instead (`swarm_p2p_fallbacks_total{reason}`). */
export const FALLBACK_REASONS = [...LINK_FAILURES, 'unsupported', 'backoff'] as const;
export type FallbackReason = (typeof FALLBACK_REASONS)[number];

const digest = z.string().regex(new RegExp(`^[0-9a-f]{${FRAME_DIGEST_CHARS}}$`), 'digest: SHA-256 hex');

/** In a sender's `out`: the frame went to `to` peer to peer and was acknowledged. */
export const sentReportSchema = z.strictObject({
  to: peerIdSchema,
  bytes: z.number().int().min(1).max(2 ** 31),
  digest,
});
export type SentReport = z.infer<typeof sentReportSchema>;

/** In a receiver's `out`: the peer frame its task ran on, as the receiver checked it. */
export const gotReportSchema = z.strictObject({
  from: peerIdSchema,
  digest,
  norm: z.number().finite().min(0),
});
export type GotReport = z.infer<typeof gotReportSchema>;

/** In a receiver's `out` instead of a result: the peer frame its task names was missing or failed the hop check. */
export const refusedReportSchema = z.strictObject({
  from: peerIdSchema,
  /** A FrameError reason (`nonfinite`, `shape`, `header`, ...), `missing` or `wrong_peer`. */
  reason: z.string().regex(/^[a-z_]{1,32}$/),
  /** Digest of the refused frame as received (absent when none arrived). */
  digest: digest.optional(),
});
export type RefusedReport = z.infer<typeof refusedReportSchema>;

/** In a sender's `out` that carries its frame after all: why it did not go peer to peer. */
export const fallbackSchema = z.enum(FALLBACK_REASONS);
