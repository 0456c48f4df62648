/** Tensor shape limits and validation shared by the frame and bundle codecs. */
import { FrameError } from './frame-error';

/** Largest tensor rank the codecs carry. */
export const MAX_RANK = 4;
/** Largest single dimension the codecs carry. */
export const MAX_DIM = 2 ** 24;

/**
 * Element count of `shape`, after checking its rank is within
 * minRank..maxRank and every dimension is an integer in 1..MAX_DIM.
 * Throws `FrameError('shape')` otherwise. A rank-0 shape has one element.
 */
export function shapeSize(shape: readonly number[], minRank = 1, maxRank = MAX_RANK): number {
  if (!Array.isArray(shape) || shape.length < minRank || shape.length > maxRank) {
    const rank = Array.isArray(shape) ? shape.length : typeof shape;
    throw new FrameError('shape', `rank must be ${minRank}..${maxRank}, got ${rank}`);
  }
  let count = 1;
  for (const dim of shape) {
    if (!Number.isInteger(dim) || dim < 1 || dim > MAX_DIM) {
      throw new FrameError('shape', `dimension ${dim} outside 1..${MAX_DIM} in [${shape.join(', ')}]`);
    }
    count *= dim;
  }
  return count;
}
