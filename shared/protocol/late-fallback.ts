/**
 * The two messages of a peer frame that falls back to the relay after its sender already reported
 * it (docs/p2p.md#the-early-report): a sender reports `sent` as soon as it hands a frame to a link
 * that works, so the receiver's task goes out at once; when that link then breaks before the
 * peer acknowledged the frame, the sender sends the frame to the coordinator (`p2p_fallback`),
 * which checks it as any relayed frame and passes it to the receiver (`p2p_relayed`), whose task
 * is already waiting for it.
 */
import { z } from 'zod';
import { fallbackSchema } from './p2p-messages.js';
import { peerIdSchema } from './signal.js';

const index = z.number().int().min(0).max(0xffff);

/** Tab -> coordinator (the frame beside it): the link broke after this task's early `sent` report. */
export const lateFallbackSchema = z.strictObject({
  attempt: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  iteration: z.number().int().min(0).max(0xffffffff),
  mb: index,
  /** The sending task's direction: `F` / `E` (training / evaluation forward) sent an activation, `B` a gradient. */
  dir: z.enum(['F', 'B', 'E']),
  hop: index,
  reason: fallbackSchema,
});
export type LateFallback = z.infer<typeof lateFallbackSchema>;

/** Coordinator -> tab (the frame beside it): the input of a waiting task, relayed for `from` whose link broke. */
export const relayedPeerFrameSchema = z.strictObject({
  from: peerIdSchema,
  kind: z.enum(['act', 'grad']),
  attempt: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  iteration: z.number().int().min(0).max(0xffffffff),
  mb: index,
  /** The sender's hop (the frame's header hop). */
  hop: index,
});
export type RelayedPeerFrame = z.infer<typeof relayedPeerFrameSchema>;
