/**
 * Per-sender statistics of relayed frames: who to blame for an inflated number.
 *
 * Every activation and gradient frame a tab sends is checked by the coordinator before it is
 * relayed (relay-check.ts), and that check yields the frame's norm. Per (sender tab, stage,
 * direction) this keeps the largest frame norm of the iteration in progress and, for applied
 * iterations, a window of those maxima; also per (stage, direction) across whichever tabs served
 * it. A frame flow has *jumped* when its norm is more than `factor` times its baseline: the
 * median of the sender's own recent maxima (at least `minHistory` of them), the median of the
 * other replicas of its stage this iteration, or, for a tab new to its stage, the stage's recent
 * median under its previous tabs.
 *
 * Two uses, both in the barrier before anyone steps:
 * - `blame(stage)`: the gradient-norm screen (outliers.ts) found `stage` an outlier. A stage's
 *   gradient is computed from what flowed into it (activations from upstream, gradients from
 *   downstream), so before its own tab is blamed, the flows into it are checked: the one that
 *   jumped most is followed to its sender's stage, and so on while a flow into that stage jumped
 *   too (a victim relays the inflation it received); the last sender on that chain is the culprit.
 * - `screen()`: a tab whose relayed frames jumped against its *own* history while every frame
 *   flowing into its stage came from a tab with a history of its own and moved less than
 *   sqrt(factor) is inflating what it sends (its inputs cannot explain its output). Stricter than
 *   `blame` on purpose (no gradient outlier backs it up): a tab new to its stage, or one whose
 *   neighbour is new, is not judged, so a rebuilt stage's honest jumps are never blamed.
 */
import type { Volunteer } from '../tabs/registry.js';
import { median } from '../tabs/tab-speed.js';

export type RelayDirection = 'act' | 'grad';

/** One sender's frames of one stage and direction in the iteration in progress. */
interface Flow {
  sender: Volunteer;
  stage: number;
  dir: RelayDirection;
  /** Largest frame norm so far. */
  max: number;
  /** Stages the frames went to. */
  into: Set<number>;
}

export interface RelaySuspect {
  sender: Volunteer;
  /** The stage the sender serves (its frames came from there). */
  stage: number;
  dir: RelayDirection;
  norm: number;
  baseline: number;
  ratio: number;
  reason: string;
}

type Baseline = { value: number; against: 'own' | 'replicas' | 'stage' };

const AGAINST_TEXT: Record<Baseline['against'], string> = {
  own: 'its recent median',
  replicas: "the median of its stage's other replicas",
  stage: "its stage's recent median",
};

export class RelayNorms {
  private current = new Map<string, Flow>();
  /** Per tab: `${stage}:${dir}` -> recent per-iteration maxima. */
  private own = new Map<Volunteer, Map<string, number[]>>();
  /** `${stage}:${dir}` -> recent per-iteration maxima, whichever tab sent them. */
  private byStage = new Map<string, number[]>();

  constructor(readonly factor = 50, readonly window = 20, readonly minHistory = 5) {}

  /** A training pass starts: what the last one relayed no longer counts. */
  begin(): void {
    this.current.clear();
  }

  /** `sender`, serving `stage`, relayed a frame of norm `norm` towards stage `into`. */
  record(sender: Volunteer, stage: number, dir: RelayDirection, into: number, norm: number): void {
    const key = `${sender.id}|${stage}:${dir}`;
    let f = this.current.get(key);
    if (!f) this.current.set(key, (f = { sender, stage, dir, max: 0, into: new Set() }));
    if (norm > f.max) f.max = norm;
    f.into.add(into);
  }

  /** The iteration was applied: its maxima join the histories. */
  commit(): void {
    const push = (h: number[], x: number) => {
      h.push(x);
      if (h.length > this.window) h.shift();
    };
    for (const f of this.current.values()) {
      const k = `${f.stage}:${f.dir}`;
      let mine = this.own.get(f.sender);
      if (!mine) this.own.set(f.sender, (mine = new Map()));
      if (!mine.has(k)) mine.set(k, []);
      push(mine.get(k)!, f.max);
      if (!this.byStage.has(k)) this.byStage.set(k, []);
      push(this.byStage.get(k)!, f.max);
    }
    this.current.clear();
  }

  /** The tab is gone: its history goes with it. */
  forget(v: Volunteer): void {
    this.own.delete(v);
  }

  /** Recent maxima of `v`'s frames of `stage` in `dir` (tests, dashboards). */
  history(v: Volunteer, stage: number, dir: RelayDirection): readonly number[] {
    return this.own.get(v)?.get(`${stage}:${dir}`) ?? [];
  }

  private baselines(f: Flow, which: readonly Baseline['against'][]): Baseline[] {
    const out: Baseline[] = [];
    const k = `${f.stage}:${f.dir}`;
    const mine = this.own.get(f.sender)?.get(k);
    const hasOwn = (mine?.length ?? 0) >= this.minHistory;
    if (which.includes('own') && hasOwn) out.push({ value: median(mine!)!, against: 'own' });
    if (which.includes('replicas')) {
      const others = [...this.current.values()].filter((g) => g.stage === f.stage && g.dir === f.dir && g.sender !== f.sender).map((g) => g.max);
      if (others.length > 0) out.push({ value: median(others)!, against: 'replicas' });
    }
    const stageHistory = this.byStage.get(k);
    if (which.includes('stage') && !hasOwn && (stageHistory?.length ?? 0) >= this.minHistory) out.push({ value: median(stageHistory!)!, against: 'stage' });
    return out.filter((b) => b.value > 0 && Number.isFinite(b.value));
  }

  /** The flow's largest ratio over the given baselines, or null when it has none of them. */
  private judge(f: Flow, which: readonly Baseline['against'][]): RelaySuspect | null {
    let best: RelaySuspect | null = null;
    for (const b of this.baselines(f, which)) {
      const ratio = f.max / b.value;
      if (best && ratio <= best.ratio) continue;
      const what = f.dir === 'grad' ? 'gradients' : 'activations';
      best = {
        sender: f.sender,
        stage: f.stage,
        dir: f.dir,
        norm: f.max,
        baseline: b.value,
        ratio,
        reason: `relayed ${what} to stage ${[...f.into].join(', ')} with norm ${f.max.toExponential(2)}, ${ratio.toFixed(0)}x ${AGAINST_TEXT[b.against]} ${b.value.toExponential(2)}`,
      };
    }
    return best;
  }

  private flowsInto(stage: number): Flow[] {
    return [...this.current.values()].filter((f) => f.into.has(stage) && f.stage !== stage);
  }

  /**
   * `stage`'s gradient norm is an outlier: the sender whose relayed frames inflated it, following
   * the chain of jumped flows into it (see above), or null when no flow into it jumped.
   */
  blame(stage: number): RelaySuspect | null {
    let culprit: RelaySuspect | null = null;
    const seen = new Set([stage]);
    for (let at = stage; ; ) {
      let best: RelaySuspect | null = null;
      for (const f of this.flowsInto(at)) {
        if (seen.has(f.stage)) continue;
        const j = this.judge(f, ['own', 'replicas', 'stage']);
        if (j && j.ratio > this.factor && (!best || j.ratio > best.ratio)) best = j;
      }
      if (!best) return culprit;
      culprit = best;
      seen.add(best.stage);
      at = best.stage;
    }
  }

  /**
   * A tab whose relayed frames jumped against its own history although nothing that flowed into
   * its stage did (see above); the largest such jump, or null.
   */
  screen(): RelaySuspect | null {
    const calm = Math.sqrt(this.factor);
    let worst: RelaySuspect | null = null;
    for (const f of this.current.values()) {
      const j = this.judge(f, ['own']);
      if (!j || j.ratio <= this.factor || (worst && j.ratio <= worst.ratio)) continue;
      const explained = this.flowsInto(f.stage).some((g) => {
        if (g.sender === f.sender) return false;
        const gj = this.judge(g, ['own']);
        return gj === null || gj.ratio > calm;
      });
      if (!explained) worst = j;
    }
    return worst;
  }
}
