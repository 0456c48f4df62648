/**
 * The one error type of shared/recovery: thrown when a recovery cannot be carried out as asked
 * (mismatched neighbour weights, a missing source, a strategy this layer does not execute).
 * The message says what was wrong, so the coordinator can log it and fall back.
 */
export class RecoveryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecoveryError';
  }
}
