/**
 * A run's wire encoding: how activations and activation gradients travel between stages
 * (`--wire`). Tokens, targets, weights and recovery transfers always stay exact (int32 / float32).
 * The local trainer applies `wireRoundTrip` at every hop boundary, so a swarm and the local
 * trainer with the same encoding compute the same numbers. See docs/wire.md.
 */
import { decodeTensorFrame, encodeTensorFrame, frameByteLength, type FrameDtype, type FrameKind } from './codec';

export const WIRE_ENCODINGS = ['f32', 'f16', 'int8'] as const;
export type WireEncoding = (typeof WIRE_ENCODINGS)[number];

/** The frame dtype each wire encoding sends. */
export const WIRE_DTYPES: Record<WireEncoding, FrameDtype> = { f32: 'float32', f16: 'float16', int8: 'int8' };

export function isWireEncoding(x: unknown): x is WireEncoding {
  return typeof x === 'string' && (WIRE_ENCODINGS as readonly string[]).includes(x);
}

/** Bytes of one activation (or gradient) frame of `shape` sent with `wire`. */
export function wireFrameBytes(shape: readonly number[], wire: WireEncoding): number {
  return frameByteLength(shape, WIRE_DTYPES[wire]);
}

/**
 * What the next stage receives when a stage sends `data` with `wire`: the frame encoded and
 * decoded by the same codec the tabs use (the identity for f32).
 */
export function wireRoundTrip(data: Float32Array, shape: readonly number[], wire: WireEncoding, kind: FrameKind = 'act'): Float32Array {
  if (wire === 'f32') return data;
  const header = { kind, iteration: 0, microbatch: 0, hop: 0, fromStage: 0, toStage: -1, dtype: WIRE_DTYPES[wire], shape: [...shape] };
  return decodeTensorFrame(encodeTensorFrame(header, data)).data as Float32Array;
}
