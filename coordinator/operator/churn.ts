/**
 * Operator-injected churn: after every iteration each stage's tab fails independently with a
 * per-iteration probability (fixed, or from an hourly rate and the iteration's duration), drawn
 * from a seeded generator so a run can be repeated.
 */
import type { ChurnConfig } from '../../shared/protocol/operator.js';
import type { IterationRecord } from '../../shared/protocol/operator.js';
import { mulberry32 } from '../../shared/model/rng.js';
import { perIterationProbability } from '../../shared/recovery/failure-model.js';
import type { EventLog } from '../record/events-log.js';
import type { OperatorTabs } from './operator-context.js';

export class Churn {
  private config: ChurnConfig = { mode: 'off' };
  private rand: () => number = () => 1;
  private failures = 0;

  constructor(private nStages: number, private tabs: OperatorTabs, private events: EventLog) {}

  /** The configuration and the failures injected so far. */
  get state(): ChurnConfig & { failures: number } {
    return { ...this.config, failures: this.failures };
  }

  set(c: ChurnConfig): void {
    this.config = c;
    this.rand = c.mode === 'off' ? () => 1 : mulberry32(c.seed);
    const what =
      c.mode === 'off'
        ? 'off'
        : c.mode === 'iteration'
          ? `each stage fails with probability ${c.probability} per iteration (seed ${c.seed})`
          : `each stage fails at ${(c.rate * 100).toFixed(1)}% per hour (seed ${c.seed})`;
    this.events.add('run', `operator set churn: ${what}`, { operator: true, action: 'churn-config', ...c });
  }

  /** After iteration `r`: fail each stage's tab with the per-iteration probability. */
  step(r: IterationRecord): void {
    const c = this.config;
    if (c.mode === 'off') return;
    const p = c.mode === 'iteration' ? c.probability : perIterationProbability(c.rate, Math.max(r.seconds, 1e-3));
    for (let s = 0; s < this.nStages; s++) {
      const hit = this.rand() < p;
      const v = this.tabs.stages.owner(s);
      if (!hit || !v) continue;
      this.failures++;
      this.events.add('run', `churn: failing stage ${s} (${v.id}) after iteration ${r.iteration} (p=${p.toPrecision(3)} per iteration)`, {
        operator: true,
        action: 'churn',
        stage: s,
        volunteer: v.id,
        probability: p,
      });
      void this.tabs.drop(v, `churn: injected failure (p=${p.toPrecision(3)})`);
    }
  }
}
