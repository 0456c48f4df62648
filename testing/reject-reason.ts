/** Test helper: run `fn` and return the reason of the FrameError it throws (fails the test otherwise). */
import { expect } from 'vitest';
import { FrameError, type FrameErrorReason } from '../shared/protocol/frame-error.js';

export function rejectReason(fn: () => unknown): FrameErrorReason {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(FrameError);
    return (error as FrameError).reason;
  }
  throw new Error('expected a FrameError, nothing was thrown');
}
