/** Finiteness checks for numeric tensor data (NaN / Infinity detection). */
import { FrameError } from './frame-error';

/** Index of the first NaN or +-Infinity in `data`, or -1 if every value is finite. */
export function firstNonFiniteIndex(data: ArrayLike<number>): number {
  for (let i = 0; i < data.length; i++) {
    // x - x is 0 for every finite x and NaN for NaN / +-Infinity.
    const v = data[i];
    if (v - v !== 0) return i;
  }
  return -1;
}

/**
 * Throw `FrameError('nonfinite')` if `data` holds a NaN or +-Infinity.
 * `label` names the tensor in the error message.
 */
export function assertFinite(data: ArrayLike<number>, label = 'tensor'): void {
  const i = firstNonFiniteIndex(data);
  if (i !== -1) {
    throw new FrameError('nonfinite', `${label}[${i}] is ${data[i]} (${data.length} values)`);
  }
}
