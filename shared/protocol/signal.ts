/**
 * WebRTC signalling between two tabs, carried by the coordinator over the socket.io connection
 * each tab already has (issue 23). A tab emits `p2p-signal {to, signal}`; the coordinator checks
 * the envelope, that the pair may talk, and forwards `p2p-signal {from, signal}` to the other tab.
 * Both ends validate every signal again (the coordinator relays what a stranger wrote).
 *
 *   connect    the higher peer id asks the lower one to open a link (the lower id always offers)
 *   offer      SDP offer of link `link` (one RTCPeerConnection, one data channel)
 *   answer     SDP answer of link `link`
 *   candidate  one ICE candidate of link `link` (trickle ICE)
 *   bye        link `link` is closed on purpose
 *
 * `link` is a random id chosen by the side that opens the link: signals of an older link between
 * the same pair are recognised and dropped. With `--p2p-stripes K` > 1 a link is K peer
 * connections (shared/transport/striped-link.ts): its offer, answer and candidates carry the
 * connection's `stripe` index (0 .. K-1); with K = 1 they carry none, as before.
 */
import { z } from 'zod';

/** Largest SDP accepted: a data-channel-only session is ~0.5-2 KiB; 16 KiB leaves room for many candidates. */
export const MAX_SDP_CHARS = 16 * 1024;
/** Largest ICE candidate line (RFC 8445 lines are ~100-200 characters). */
export const MAX_CANDIDATE_CHARS = 1024;

/** A link id: 8-64 characters A-Z a-z 0-9 _ -. */
export const linkIdSchema = z.string().regex(/^[A-Za-z0-9_-]{8,64}$/, 'link id: 8-64 characters A-Z a-z 0-9 _ -');
/** A peer id as the coordinator names tabs (socket ids and the like). */
export const peerIdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'peer id: 1-64 characters A-Z a-z 0-9 _ -');

const sdp = (type: 'offer' | 'answer') =>
  z
    .string()
    .min(8)
    .max(MAX_SDP_CHARS, `${type} SDP: at most ${MAX_SDP_CHARS} characters`)
    .refine((s) => s.startsWith('v=0'), `${type} SDP must start with v=0`)
    .refine((s) => !s.includes('\u0000'), `${type} SDP must not contain NUL`);

/** Most stripes (peer connections) one link may have: `--p2p-stripes` is 1 .. MAX_STRIPES. */
export const MAX_STRIPES = 8;
/** Whether `k` is a stripe count a link may have: an integer 1 .. MAX_STRIPES. */
export function isStripeCount(k: unknown): k is number {
  return typeof k === 'number' && Number.isInteger(k) && k >= 1 && k <= MAX_STRIPES;
}
const stripe = z.number().int().min(0).max(MAX_STRIPES - 1).optional();

export const signalSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('connect'), link: linkIdSchema }),
  z.strictObject({ type: z.literal('offer'), link: linkIdSchema, stripe, sdp: sdp('offer') }),
  z.strictObject({ type: z.literal('answer'), link: linkIdSchema, stripe, sdp: sdp('answer') }),
  z.strictObject({
    type: z.literal('candidate'),
    link: linkIdSchema,
    stripe,
    /** Empty string = end of candidates. */
    candidate: z
      .string()
      .max(MAX_CANDIDATE_CHARS)
      .refine((s) => s === '' || s.startsWith('candidate:'), 'candidate must start with "candidate:" or be empty'),
    sdpMid: z.string().max(64).nullable(),
    sdpMLineIndex: z.number().int().min(0).max(15).nullable(),
  }),
  z.strictObject({ type: z.literal('bye'), link: linkIdSchema }),
]);
export type Signal = z.infer<typeof signalSchema>;

/** Tab -> coordinator: forward `signal` to tab `to`. */
export const outgoingSignalSchema = z.strictObject({ to: peerIdSchema, signal: signalSchema });
export type OutgoingSignal = z.infer<typeof outgoingSignalSchema>;

/** Coordinator -> tab: `signal` from tab `from` (the coordinator sets `from`, never the sender). */
export const incomingSignalSchema = z.strictObject({ from: peerIdSchema, signal: signalSchema });
export type IncomingSignal = z.infer<typeof incomingSignalSchema>;

export type SignalParse = { ok: true; signal: Signal } | { ok: false; message: string };

/** Validates a signal from a stranger; never throws. */
export function parseSignal(raw: unknown): SignalParse {
  const parsed = signalSchema.safeParse(raw);
  if (parsed.success) return { ok: true, signal: parsed.data };
  const issue = parsed.error.issues[0];
  return { ok: false, message: `bad signal: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid'}` };
}
