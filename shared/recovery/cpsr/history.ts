/**
 * One stage's checkpoint history for the predictor: a bounded ring of flat Float32Array states
 * (the stage's weights concatenated in a fixed order) with the iteration each was taken at.
 * Intervals may be unequal. The ring owns its copies; a state is validated before it is kept
 * (length, finite values, increasing iteration), because it comes from a tab or from disk.
 *
 * Memory bound: capacity x length x 4 bytes, checked against `maxBytes` when the first state
 * fixes the length (default 150 MiB: with the predictor's working set, under the slides' 200 MB).
 */
import { CpsrError } from './errors.js';

export interface HistoryLimits {
  /** States kept (the oldest is dropped beyond this). */
  capacity: number;
  /** Upper bound on capacity x values x 4 bytes. */
  maxBytes: number;
}

export const DEFAULT_HISTORY_LIMITS: HistoryLimits = { capacity: 16, maxBytes: 150 * 1024 * 1024 };

export interface HistoryEntry {
  iteration: number;
  state: Float32Array;
}

export class CheckpointHistory {
  private entries: HistoryEntry[] = [];
  private length: number | null = null;

  constructor(readonly limits: HistoryLimits = DEFAULT_HISTORY_LIMITS) {
    if (!Number.isInteger(limits.capacity) || limits.capacity < 1 || limits.capacity > 1024) throw new CpsrError(`history capacity must be an integer in 1..1024, got ${limits.capacity}`);
    if (!(limits.maxBytes > 0)) throw new CpsrError(`history maxBytes must be > 0, got ${limits.maxBytes}`);
  }

  /** A history holding `entries` (e.g. read back from disk), each validated as add() does. */
  static from(entries: readonly { iteration: unknown; state: unknown }[], limits: HistoryLimits = DEFAULT_HISTORY_LIMITS): CheckpointHistory {
    if (!Array.isArray(entries)) throw new CpsrError('history must be an array of {iteration, state}');
    const h = new CheckpointHistory(limits);
    for (const e of entries) {
      if (typeof e !== 'object' || e === null) throw new CpsrError('history entry must be an object {iteration, state}');
      if (!(e.state instanceof Float32Array)) throw new CpsrError(`history entry at iteration ${String(e.iteration)}: state must be a Float32Array`);
      h.add(e.iteration as number, e.state);
    }
    return h;
  }

  /** Keeps a copy of `state` taken after `iteration` completed iterations. */
  add(iteration: number, state: Float32Array): void {
    if (!Number.isSafeInteger(iteration) || iteration < 0) throw new CpsrError(`checkpoint iteration must be a non-negative integer, got ${iteration}`);
    const last = this.entries[this.entries.length - 1];
    if (last && iteration <= last.iteration) throw new CpsrError(`checkpoint iteration ${iteration} is not after the last one kept (${last.iteration})`);
    if (!(state instanceof Float32Array) || state.length === 0) throw new CpsrError('checkpoint state must be a non-empty Float32Array');
    if (this.length === null) {
      const bytes = this.limits.capacity * state.length * 4;
      if (bytes > this.limits.maxBytes) {
        throw new CpsrError(`a history of ${this.limits.capacity} states of ${state.length} values needs ${bytes} bytes, over the bound of ${this.limits.maxBytes}`);
      }
    } else if (state.length !== this.length) {
      throw new CpsrError(`checkpoint at iteration ${iteration} has ${state.length} values, the history holds ${this.length}`);
    }
    for (let i = 0; i < state.length; i++) {
      if (!Number.isFinite(state[i]!)) throw new CpsrError(`checkpoint at iteration ${iteration}: value ${i} is not finite (${state[i]})`);
    }
    this.length = state.length;
    this.entries.push({ iteration, state: state.slice() });
    if (this.entries.length > this.limits.capacity) this.entries.shift();
  }

  /** Forgets every state after `iteration` (a run that went back in time must not mix futures). */
  dropAfter(iteration: number): void {
    this.entries = this.entries.filter((e) => e.iteration <= iteration);
    if (this.entries.length === 0) this.length = null;
  }

  get size(): number {
    return this.entries.length;
  }

  /** Values per state (null while empty). */
  get values(): number | null {
    return this.length;
  }

  get iterations(): number[] {
    return this.entries.map((e) => e.iteration);
  }

  /** The kept states, oldest first (read-only views; do not modify). */
  get states(): readonly Float32Array[] {
    return this.entries.map((e) => e.state);
  }

  get last(): HistoryEntry | null {
    return this.entries[this.entries.length - 1] ?? null;
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.entries.length * (this.length ?? 0) * 4;
  }
}
