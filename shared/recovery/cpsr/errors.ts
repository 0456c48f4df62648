/**
 * The one error type of shared/recovery/cpsr: bad input (a malformed or oversized checkpoint
 * history, a non-finite value, an impossible fit). The message says what was wrong, so the caller
 * can log it and fall back to the plain restore.
 */
export class CpsrError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CpsrError';
  }
}
