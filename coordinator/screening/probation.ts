/**
 * Tabs on probation: a suspicion that no audit could settle (the stage had no sibling to re-run
 * the hop on, or the sibling did not answer) never expels a tab (issue 22); its contribution of
 * that iteration is dropped and the tab is watched more strictly for a while: for `iterations`
 * applied iterations its relayed frames are judged against `strictness` times their usual
 * thresholds (relay-norms.ts), so a tab that keeps inflating is suspected at a smaller jump.
 * Listed in `/metrics` (`swarm_screening_probation`, the gauge it keeps) and in the event log.
 */
import type { Volunteer } from '../tabs/registry.js';

export const PROBATION_ITERATIONS = 100;
export const PROBATION_STRICTNESS = 0.5;

export interface ProbationEntry {
  volunteer: string;
  stage: number;
  /** The first applied iteration at which the probation is over. */
  until: number;
  reason: string;
}

export class Probation {
  private entries = new Map<Volunteer, ProbationEntry>();

  /**
   * `iteration()`: the run's current iteration (applied iterations so far); `gauge`: the count of
   * tabs on probation (`swarm_screening_probation`), set when a tab is put on it and by `refresh()`.
   */
  constructor(
    private iteration: () => number,
    private gauge: { set(value: number): void } | null = null,
    readonly iterations = PROBATION_ITERATIONS,
    readonly strictness = PROBATION_STRICTNESS,
  ) {}

  /** Puts `v` on probation (again: from now on); returns the iteration it ends. */
  put(v: Volunteer, stage: number, reason: string): number {
    const until = this.iteration() + this.iterations;
    this.entries.set(v, { volunteer: v.id, stage, until, reason });
    this.refresh();
    return until;
  }

  /** Sets the gauge to the tabs on probation now (probations also end as iterations are applied). */
  refresh(): void {
    this.gauge?.set(this.list().length);
  }

  isOn(v: Volunteer): boolean {
    const e = this.entries.get(v);
    if (!e) return false;
    if (this.iteration() < e.until) return true;
    this.entries.delete(v);
    return false;
  }

  /** The factor on `v`'s relay thresholds: `strictness` on probation, else 1. */
  strictnessOf(v: Volunteer): number {
    return this.isOn(v) ? this.strictness : 1;
  }

  /** Tabs on probation now. */
  list(): ProbationEntry[] {
    return [...this.entries.keys()].filter((v) => this.isOn(v)).map((v) => this.entries.get(v)!);
  }

  /** The tab is gone. */
  forget(v: Volunteer): void {
    this.entries.delete(v);
  }
}
