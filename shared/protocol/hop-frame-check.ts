/**
 * What an activation or gradient frame of one hop must be, checked wherever it arrives: by the
 * coordinator before it relays it (coordinator/screening/relay-check.ts calls this), and by the receiving tab
 * when the frame came straight from its peer over WebRTC (issue 23). Reads the frame in place
 * (inspectTensorFrame: decode limits, encoding, shape, finiteness) and returns the L2 norm of its
 * decoded values, which the receiver reports so the coordinator keeps its per-sender norm history.
 */
import { inspectTensorFrame } from './codec.js';
import { FrameError } from './frame-error.js';
import { INT8_BLOCK_SIZE } from './quantize.js';
import { WIRE_DTYPES, type WireEncoding } from './wire-encoding.js';

export interface ExpectedHopFrame {
  kind: 'act' | 'grad';
  iteration: number;
  microbatch: number;
  hop: number;
  fromStage: number;
  /** The receiving stage; checked when given (a tab receiving peer to peer knows its own). */
  toStage?: number;
  /** [batch, seq, d_model] */
  shape: readonly number[];
  /** The run's wire encoding (`--wire`); absent = f32. */
  wire?: WireEncoding;
}

/**
 * Throws a FrameError (its `reason` is the rejection reason) unless `frame` is exactly what the
 * hop asked for. Returns the L2 norm of the frame's (decoded) values.
 */
export function checkHopFrame(frame: Uint8Array, want: ExpectedHopFrame, maxBytes: number): number {
  const { header, norm } = inspectTensorFrame(frame, { maxBytes, dtype: WIRE_DTYPES[want.wire ?? 'f32'] });
  if (header.kind !== want.kind) throw new FrameError('header', `expected a ${want.kind} frame, got ${header.kind}`);
  if (header.dtype === 'int8' && header.blockSize !== INT8_BLOCK_SIZE) {
    throw new FrameError('blocks', `this run's int8 blocks hold ${INT8_BLOCK_SIZE} values, got ${header.blockSize}`);
  }
  if (header.iteration !== want.iteration || header.microbatch !== want.microbatch || header.hop !== want.hop || header.fromStage !== want.fromStage) {
    throw new FrameError('header', 'frame header does not match its metadata');
  }
  if (want.toStage !== undefined && header.toStage !== want.toStage) {
    throw new FrameError('header', `frame is addressed to stage ${header.toStage}, this is stage ${want.toStage}`);
  }
  const s = header.shape;
  if (s.length !== want.shape.length || s.some((d, i) => d !== want.shape[i])) throw new FrameError('shape', `expected shape [${want.shape}], got [${s}]`);
  // An act or grad frame in a wire encoding is float32, float16 or int8: never null.
  return norm ?? 0;
}
