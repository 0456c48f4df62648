/**
 * Per-sender statistics of relayed frames: who to blame for an inflated number.
 *
 * Every activation and gradient frame a tab sends is checked by the coordinator before it is
 * relayed (relay-check.ts), and that check yields the frame's norm. Frames are told apart by
 * what they are (issue 22, item 3): per (sender tab, stage, direction, hop of the microbatch's
 * path) this keeps the largest frame norm of the iteration in progress and, for applied
 * iterations, a window of those maxima; also per (stage, direction, hop) across whichever tabs
 * served it. The hop is where the frame sits on its path (shared/schedule/paths.ts), so under
 * CheckFree+ a stage's frames of a swapped microbatch (which leave it at another hop, towards
 * another neighbour) have their own history. A frame flow has *jumped* when its norm is more than
 * its threshold times its baseline: the baseline is the median of the sender's own recent maxima
 * (at least `minHistory` of them), the median of the other replicas of its stage this iteration,
 * or, for a tab new to its stage, the stage's recent median under its previous tabs; the
 * threshold is `factor`, or more where the history itself spreads wide: exp(k x 1.4826 x MAD of
 * its log norms) (median + k robust standard deviations on log norms), so a flow whose honest
 * norms legitimately move by orders of magnitude (small batches, early training) needs a larger
 * jump.
 *
 * Two uses, both in the barrier before anyone steps:
 * - `blame(stage)`: the gradient-norm screen (outliers.ts) found `stage` an outlier. A stage's
 *   gradient is computed from what flowed into it (activations from upstream, gradients from
 *   downstream), so before its own tab is blamed, the flows into it are checked: the one that
 *   jumped most is followed to its sender's stage, and so on while a flow into that stage jumped
 *   too (a victim relays the inflation it received); the last sender on that chain is the culprit.
 * - `screen()`: a tab whose relayed frames jumped by more than their threshold (the *square* of
 *   it for gradients) against its *own* history while every frame flowing into its stage came from a tab with a
 *   history of its own and moved less than the square root of its threshold is inflating what it
 *   sends (its inputs cannot explain its output). Stricter than `blame` on purpose (no gradient
 *   outlier backs it up; honest small-batch CheckFree+ gradients jump ~100x early in a run): a tab new to its stage, or one whose
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
  /** The hop of the microbatch's path the frames left (what the frame is). */
  hop: number;
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
  /** The hop of the path the frames left (with stage and dir: which flow, so which hop to audit). */
  hop: number;
  norm: number;
  baseline: number;
  ratio: number;
  /** The ratio above which the flow counts as jumped (`factor`, or more for a spread history). */
  threshold: number;
  reason: string;
}

/** Robust standard deviations (1.4826 x MAD of log norms) a jump must exceed, when that is more than `factor`. */
export const SPREAD_K = 5;

/** The jump threshold for a history: max(factor, exp(k x 1.4826 x MAD(log h))). */
export function jumpThreshold(history: readonly number[], factor: number, k = SPREAD_K): number {
  const logs = history.filter((x) => x > 0 && Number.isFinite(x)).map(Math.log);
  if (logs.length < 2) return factor;
  const m = median(logs)!;
  const mad = median(logs.map((l) => Math.abs(l - m)))!;
  return Math.max(factor, Math.exp(k * 1.4826 * mad));
}

/** A flow of the iteration in progress that an audit cleared (hop-audit.ts): it is judged no more. */
export type Excused = (sender: Volunteer, stage: number, dir: RelayDirection, hop: number) => boolean;

const NONE_EXCUSED: Excused = () => false;

type Baseline = { value: number; threshold: number; against: 'own' | 'replicas' | 'stage' };

const AGAINST_TEXT: Record<Baseline['against'], string> = {
  own: 'its recent median',
  replicas: "the median of its stage's other replicas",
  stage: "its stage's recent median",
};

export class RelayNorms {
  private current = new Map<string, Flow>();
  /** Per tab: `${stage}:${dir}:${hop}` -> recent per-iteration maxima. */
  private own = new Map<Volunteer, Map<string, number[]>>();
  /** `${stage}:${dir}:${hop}` -> recent per-iteration maxima, whichever tab sent them. */
  private byStage = new Map<string, number[]>();

  /**
   * `strictness(v)` scales `v`'s thresholds (1 normally; below 1 for a tab on probation,
   * probation.ts: its frames are suspected at a smaller jump).
   */
  constructor(
    readonly factor = 50,
    readonly window = 20,
    readonly minHistory = 5,
    private strictness: (v: Volunteer) => number = () => 1,
  ) {}

  /** A training pass starts: what the last one relayed no longer counts. */
  begin(): void {
    this.current.clear();
  }

  /** `sender`, serving `stage`, relayed a frame of norm `norm`, at hop `hop` of its path, towards stage `into`. */
  record(sender: Volunteer, stage: number, dir: RelayDirection, into: number, norm: number, hop = 0): void {
    const key = `${sender.id}|${stage}:${dir}:${hop}`;
    let f = this.current.get(key);
    if (!f) this.current.set(key, (f = { sender, stage, dir, hop, max: 0, into: new Set() }));
    if (norm > f.max) f.max = norm;
    f.into.add(into);
  }

  /** The iteration was applied: its maxima join the histories (but `skip`'s flows). */
  commit(skip: Excused = NONE_EXCUSED): void {
    const push = (h: number[], x: number) => {
      h.push(x);
      if (h.length > this.window) h.shift();
    };
    for (const f of this.current.values()) {
      if (skip(f.sender, f.stage, f.dir, f.hop)) continue;
      const k = flowKey(f);
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

  /** Recent maxima of `v`'s frames of `stage` in `dir` at `hop` (tests, dashboards). */
  history(v: Volunteer, stage: number, dir: RelayDirection, hop = 0): readonly number[] {
    return this.own.get(v)?.get(`${stage}:${dir}:${hop}`) ?? [];
  }

  private baselines(f: Flow, which: readonly Baseline['against'][]): Baseline[] {
    const out: Baseline[] = [];
    const k = flowKey(f);
    const mine = this.own.get(f.sender)?.get(k);
    const hasOwn = (mine?.length ?? 0) >= this.minHistory;
    const strict = this.strictness(f.sender);
    const thr = (h: readonly number[]) => Math.max(1, strict * jumpThreshold(h, this.factor));
    if (which.includes('own') && hasOwn) out.push({ value: median(mine!)!, threshold: thr(mine!), against: 'own' });
    if (which.includes('replicas')) {
      const others = [...this.current.values()].filter((g) => g.stage === f.stage && g.dir === f.dir && g.hop === f.hop && g.sender !== f.sender).map((g) => g.max);
      if (others.length > 0) out.push({ value: median(others)!, threshold: thr(others), against: 'replicas' });
    }
    const stageHistory = this.byStage.get(k);
    if (which.includes('stage') && !hasOwn && (stageHistory?.length ?? 0) >= this.minHistory) out.push({ value: median(stageHistory!)!, threshold: thr(stageHistory!), against: 'stage' });
    return out.filter((b) => b.value > 0 && Number.isFinite(b.value));
  }

  /** The flow's largest ratio (over its threshold) among the given baselines, or null when it has none of them. */
  private judge(f: Flow, which: readonly Baseline['against'][]): RelaySuspect | null {
    let best: RelaySuspect | null = null;
    for (const b of this.baselines(f, which)) {
      const ratio = f.max / b.value;
      if (best && ratio / b.threshold <= best.ratio / best.threshold) continue;
      const what = f.dir === 'grad' ? 'gradients' : 'activations';
      best = {
        sender: f.sender,
        stage: f.stage,
        dir: f.dir,
        hop: f.hop,
        norm: f.max,
        baseline: b.value,
        ratio,
        threshold: b.threshold,
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
  blame(stage: number, excused: Excused = NONE_EXCUSED): RelaySuspect | null {
    let culprit: RelaySuspect | null = null;
    const seen = new Set([stage]);
    for (let at = stage; ; ) {
      let best: RelaySuspect | null = null;
      for (const f of this.flowsInto(at)) {
        if (seen.has(f.stage) || excused(f.sender, f.stage, f.dir, f.hop)) continue;
        const j = this.judge(f, ['own', 'replicas', 'stage']);
        if (j && j.ratio > j.threshold && (!best || j.ratio / j.threshold > best.ratio / best.threshold)) best = j;
      }
      if (!best) return culprit;
      culprit = best;
      seen.add(best.stage);
      at = best.stage;
    }
  }

  /**
   * A tab whose relayed frames jumped against its own history although nothing that flowed into
   * its stage did (see above), by more than `widen` times its threshold; the largest such jump, or null.
   */
  screen(excused: Excused = NONE_EXCUSED, widen = 1): RelaySuspect | null {
    let worst: RelaySuspect | null = null;
    for (const f of this.current.values()) {
      if (excused(f.sender, f.stage, f.dir, f.hop)) continue;
      const j = this.judge(f, ['own']);
      // No gradient outlier backs this verdict: relayed gradients must jump past the square of
      // their threshold (2,500x at the default factor; an honest small-batch CheckFree+ run's
      // gradients into stage 0 jump ~100x, issue 22). Activations, normalised, keep the threshold.
      // `widen`: the warm-up while the loss falls fast (loss-warmup.ts), for this unbacked rule only.
      const need = f.dir === 'grad' ? ((j?.threshold ?? 0) * widen) ** 2 : (j?.threshold ?? 0) * widen;
      if (!j || j.ratio <= need || (worst && j.ratio / j.threshold <= worst.ratio / worst.threshold)) continue;
      const explained = this.flowsInto(f.stage).some((g) => {
        if (g.sender === f.sender) return false;
        const gj = this.judge(g, ['own']);
        return gj === null || gj.ratio > Math.sqrt(gj.threshold);
      });
      if (!explained) worst = j;
    }
    return worst;
  }
}

/** What a flow's frames are: stage, direction and hop of the path (its history's key). */
function flowKey(f: Pick<Flow, 'stage' | 'dir' | 'hop'>): string {
  return `${f.stage}:${f.dir}:${f.hop}`;
}
