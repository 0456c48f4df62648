/**
 * What the coordinator checks before it relays a tab's result to the next tab: the message's
 * shape (parseOutMessage, at the socket layer) and the tensor frame against the task it answers
 * (checkRelayFrame, in the scheduler). Validation reads the frame in place (no copy of the
 * payload, inspectTensorFrame): the same bytes are relayed, and the loop that checks the values'
 * finiteness also yields the frame's norm (kept per sender: relay-norms.ts). bench/relay.ts measures exactly these
 * functions.
 */
import { outMetaSchema, type OutMeta } from '../../shared/protocol/events.js';
import { inspectTensorFrame, FrameError, INT8_BLOCK_SIZE, WIRE_DTYPES, wireFrameBytes, type WireEncoding } from '../../shared/protocol/index.js';

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
  /** The run's wire encoding (`--wire`); absent = f32. */
  wire?: WireEncoding;
}

/** Largest activation or gradient frame of a run: exactly one [batch, seq, d_model] frame in the run's encoding. */
export function maxRelayFrameBytes(batch: number, seqLen: number, dModel: number, wire: WireEncoding = 'f32'): number {
  return wireFrameBytes([batch, seqLen, dModel], wire);
}

/**
 * Throws a FrameError (its `reason` is the rejection reason) unless `frame` is exactly what the
 * task asked for. Returns the L2 norm of the frame's (decoded) values.
 */
export function checkRelayFrame(frame: Uint8Array, want: ExpectedFrame, maxBytes: number): number {
  const { header, norm } = inspectTensorFrame(frame, { maxBytes, dtype: WIRE_DTYPES[want.wire ?? 'f32'] });
  if (header.kind !== want.kind) throw new FrameError('header', `expected a ${want.kind} frame, got ${header.kind}`);
  if (header.dtype === 'int8' && header.blockSize !== INT8_BLOCK_SIZE) {
    throw new FrameError('blocks', `this run's int8 blocks hold ${INT8_BLOCK_SIZE} values, got ${header.blockSize}`);
  }
  if (header.iteration !== want.iteration || header.microbatch !== want.microbatch || header.hop !== want.hop || header.fromStage !== want.fromStage) {
    throw new FrameError('header', 'frame header does not match its metadata');
  }
  const s = header.shape;
  if (s.length !== want.shape.length || s.some((d, i) => d !== want.shape[i])) throw new FrameError('shape', `expected shape [${want.shape}], got [${s}]`);
  // An act or grad frame in a wire encoding is float32, float16 or int8: never null.
  return norm ?? 0;
}
