/**
 * The single error type thrown when a binary frame or bundle is rejected
 * (or cannot be built). `reason` comes from a small fixed set so the
 * coordinator can count rejects by reason, e.g. as a Prometheus label.
 */

/** Every reason a frame can be rejected for. Append only: these are metric labels. */
export const FRAME_ERROR_REASONS = [
  'magic', // not binary, or wrong magic bytes
  'version', // unsupported format version
  'kind', // unknown frame kind
  'dtype', // unknown dtype, or data array type does not match dtype
  'shape', // bad rank / dimension, or element count does not match shape
  'size', // over the size limit, or payload longer than the shape needs
  'truncated', // buffer ends before the header or payload does
  'nonfinite', // NaN or +-Infinity in float32 / float16 data or in an int8 scale
  'header', // header field out of range, malformed bundle header
  'encoding', // a valid dtype, but not the wire encoding the run expects
  'blocks', // int8: block size or block count does not match the shape
  'scale', // int8: a negative block scale
] as const;

export type FrameErrorReason = (typeof FRAME_ERROR_REASONS)[number];

/** A rejected frame. The message is for logs; `reason` is for counting. */
export class FrameError extends Error {
  readonly reason: FrameErrorReason;

  constructor(reason: FrameErrorReason, message: string) {
    super(`${reason}: ${message}`);
    this.name = 'FrameError';
    this.reason = reason;
  }
}

/** Type guard for `FrameError`, e.g. in a catch block. */
export function isFrameError(error: unknown): error is FrameError {
  return error instanceof FrameError;
}
