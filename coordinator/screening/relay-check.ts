/**
 * What the coordinator checks before it relays a tab's result to the next tab: the message's
 * shape (parseOutMessage, at the socket layer) and the tensor frame against the task it answers
 * (checkRelayFrame, in the scheduler). Validation reads the frame in place (no copy of the
 * payload, inspectTensorFrame): the same bytes are relayed, and the loop that checks the values'
 * finiteness also yields the frame's norm (kept per sender: relay-norms.ts). bench/relay.ts measures exactly these
 * functions.
 */
import { outMetaSchema, type OutMeta } from '../../shared/protocol/events.js';
import { wireFrameBytes, type WireEncoding } from '../../shared/protocol/index.js';
import { checkHopFrame, type ExpectedHopFrame } from '../../shared/protocol/hop-frame-check.js';

export type OutParse = { ok: true; meta: OutMeta; frame: Uint8Array | null } | { ok: false; reason: string; message: string };

/** Schema of an `out` message: metadata and an optional binary frame. */
export function parseOutMessage(meta: unknown, frame: unknown): OutParse {
  const parsed = outMetaSchema.safeParse(meta);
  if (!parsed.success) return { ok: false, reason: 'schema', message: `bad result metadata: ${parsed.error.issues[0]?.message}` };
  if (frame !== null && !(frame instanceof Uint8Array)) return { ok: false, reason: 'schema', message: 'tensor payload must be binary' };
  return { ok: true, meta: parsed.data, frame };
}

/** What a relayed frame must be: the hop's expected frame, with no receiving stage to check (the relay addresses it). */
export type ExpectedFrame = Omit<ExpectedHopFrame, 'toStage'>;

/** Largest activation or gradient frame of a run: exactly one [batch, seq, d_model] frame in the run's encoding. */
export function maxRelayFrameBytes(batch: number, seqLen: number, dModel: number, wire: WireEncoding = 'f32'): number {
  return wireFrameBytes([batch, seqLen, dModel], wire);
}

/**
 * Throws a FrameError (its `reason` is the rejection reason) unless `frame` is exactly what the
 * task asked for. Returns the L2 norm of the frame's (decoded) values. The rules are the ones a tab
 * applies to a frame it received peer to peer (shared/protocol/hop-frame-check.ts).
 */
export function checkRelayFrame(frame: Uint8Array, want: ExpectedFrame, maxBytes: number): number {
  return checkHopFrame(frame, want, maxBytes);
}
