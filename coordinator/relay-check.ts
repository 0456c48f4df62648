/**
 * What the coordinator checks before it relays a tab's result to the next tab: the message's
 * shape (parseOutMessage, at the socket layer) and the tensor frame against the task it answers
 * (checkRelayFrame, in the scheduler). Validation reads the frame in place (no copy of the
 * payload): the same bytes are relayed. bench/relay.ts measures exactly these functions.
 */
import { outMetaSchema, type OutMeta } from '../shared/protocol/events.js';
import { decodeTensorFrame, FrameError } from '../shared/protocol/index.js';

export type OutParse = { ok: true; meta: OutMeta; frame: Uint8Array | null } | { ok: false; reason: string; message: string };

/** Schema of an `out` message: metadata and an optional binary frame. */
export function parseOutMessage(meta: unknown, frame: unknown): OutParse {
  const parsed = outMetaSchema.safeParse(meta);
  if (!parsed.success) return { ok: false, reason: 'schema', message: `bad result metadata: ${parsed.error.issues[0]?.message}` };
  if (frame !== null && !(frame instanceof Uint8Array)) return { ok: false, reason: 'schema', message: 'tensor payload must be binary' };
  return { ok: true, meta: parsed.data, frame };
}

export interface ExpectedFrame {
  kind: 'act' | 'grad';
  iteration: number;
  microbatch: number;
  hop: number;
  fromStage: number;
  /** [batch, seq, d_model] */
  shape: readonly number[];
}

/** Largest activation or gradient frame of a run: header plus batch * seq * d_model float32 values. */
export function maxRelayFrameBytes(batch: number, seqLen: number, dModel: number): number {
  return 64 + batch * seqLen * dModel * 4;
}

/** Throws a FrameError (its `reason` is the rejection reason) unless `frame` is exactly what the task asked for. */
export function checkRelayFrame(frame: Uint8Array, want: ExpectedFrame, maxBytes: number): void {
  const { header } = decodeTensorFrame(frame, { maxBytes, copy: false });
  if (header.kind !== want.kind || header.dtype !== 'float32') throw new FrameError('header', `expected a float32 ${want.kind} frame, got ${header.dtype} ${header.kind}`);
  if (header.iteration !== want.iteration || header.microbatch !== want.microbatch || header.hop !== want.hop || header.fromStage !== want.fromStage) {
    throw new FrameError('header', 'frame header does not match its metadata');
  }
  const s = header.shape;
  if (s.length !== want.shape.length || s.some((d, i) => d !== want.shape[i])) throw new FrameError('shape', `expected shape [${want.shape}], got [${s}]`);
}
