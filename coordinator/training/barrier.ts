/**
 * The barrier at the end of a training pass, one object per iteration, in named phases:
 *   rerun    hops held by replicas lost since the pass run again on their siblings (the pass kept
 *            their inputs), so nothing of the iteration is thrown away;
 *   combine  the replicas of each stage sum their gradients (gradient-reduction.ts); a replica
 *            gone before its gradient was combined sends the barrier back to rerun (a few rounds);
 *   norms    every stage reports its gradient norm (one replica: they all hold the same);
 *   screen   the norms and the relayed frames' norms are judged (screening.ts): a culprit is
 *            quarantined and the iteration abandoned before anyone steps;
 *   step     every replica clips and takes the identical Adam step.
 * With SkipPipe paths (skip-planner.ts) a stage no microbatch visited has no gradient: it takes no
 * part in any phase (no combine, no norm, no screening, no step: its Adam state does not advance),
 * exactly as the local trainer's runIteration leaves it; its step acknowledgement is null.
 * From `combine` on, every replica holds its stage's full gradient: one lost now is left out and
 * its siblings go on; only a stage's last replica abandons the iteration. A loss anywhere aborts
 * the wait at once (not after a timeout).
 */
import type { ResolvedConfig } from '../../shared/model/config.js';
import { gradNormAckSchema, stepAckSchema, type StepAck } from '../../shared/protocol/events.js';
import type { Volunteer } from '../tabs/registry.js';
import type { BundleTransfer } from '../tabs/bundle-transfer.js';
import type { StageTable } from '../placement/stage-table.js';
import type { Screening } from '../screening/screening.js';
import type { SuspectReview } from '../screening/suspect-review.js';
import type { OwnGradientAudit } from '../screening/own-gradient-audit.js';
import type { SwarmMetrics } from '../record/metrics.js';
import type { EventLog } from '../record/events-log.js';
import { reduceGradients, type Reduction } from './gradient-reduction.js';
import type { PipelinePass } from './pipeline-pass.js';
import type { ReplicaAsk } from './replica-ask.js';
import type { RunProgress } from './run-progress.js';
import type { Reject } from './task-book.js';
import { IterationAbandoned } from './iteration-abandoned.js';
import { BARRIER_DEADLINE, type AnswerTimes } from './answer-times.js';
import type { DpMode } from '../../shared/dp/dp-settings.js';

export enum BarrierPhase {
  Rerun = 'rerun',
  Combine = 'combine',
  Norms = 'norms',
  Screen = 'screen',
  Step = 'step',
  Done = 'done',
}

/** The answer times of a stage's combine (answer-times.ts). */
const COMBINE_KEY = 'barrier:combine';

/** Suspicions audited and cleared in one barrier before the iteration is dropped instead. */
const MAX_AUDIT_ROUNDS = 3;

/** Rounds of re-run + combine before the iteration is given up. */
const MAX_REDUCTION_ROUNDS = 4;

/** `norms` with stage `s`'s left out of the judgement (as a stage that did not run). */
function masked(norms: readonly (number | null)[], s: number): (number | null)[] {
  return norms.map((n, i) => (i === s ? null : n));
}

/** A replica of the stage went away (lost, or on a blip) while the stage combined its gradients. */
class ReplicaGone extends Error {
  constructor(readonly tabs: Volunteer[]) {
    super(`replica(s) ${tabs.map((v) => v.id).join(', ')} went away`);
  }
}

export interface BarrierDeps {
  config: ResolvedConfig;
  nStages: number;
  stages: StageTable;
  transfer: BundleTransfer;
  screening: Screening;
  ask: ReplicaAsk;
  progress: RunProgress;
  metrics: SwarmMetrics;
  events: EventLog;
  reject: Reject;
  quarantine: (v: Volunteer, reason: string) => void;
  unresponsive: (v: Volunteer, why: string) => void;
  stepTimeoutMs: number;
  /** Recent answer times: the combine's deadline adapts to them (answer-times.ts). */
  times: AnswerTimes;
  /** `--dp diloco`: no combine; every replica reports (and is screened on) its own norm. */
  dpMode?: DpMode;
  /** Per stage: whether a microbatch of this iteration visited it (absent: all did). */
  visited?: readonly boolean[];
  /** Audits a relay-rule suspicion before anyone is convicted (suspect-review.ts); without it, suspicions convict. */
  review?: SuspectReview;
  /** Audits a stage's own gradient outlier (own-gradient-audit.ts); without it, such an outlier convicts. */
  ownAudit?: OwnGradientAudit;
}

export class Barrier {
  private current = BarrierPhase.Rerun;
  private abortWith!: (e: Error) => void;
  private readonly aborted: Promise<never>;
  private close!: () => void;
  /** Resolves when the barrier is over (a handoff waits for it: the state is then post-step). */
  readonly done: Promise<void>;

  constructor(
    readonly iteration: number,
    readonly pass: PipelinePass,
    private deps: BarrierDeps,
  ) {
    this.aborted = new Promise<never>((_, reject) => (this.abortWith = reject));
    this.aborted.catch(() => {});
    this.done = new Promise<void>((r) => (this.close = r));
  }

  get phase(): BarrierPhase {
    return this.current;
  }

  /** A loss: every wait of the barrier gives up at once with `e`. */
  abort(e: Error): void {
    this.abortWith(e);
  }

  private race<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.aborted]);
  }

  /** Whether a microbatch of this iteration visited stage `s` (an unvisited one sits the barrier out). */
  private visited(s: number): boolean {
    return this.deps.visited?.[s] ?? true;
  }

  /** Runs every phase; resolves with each stage's step acknowledgement (null: a stage no microbatch visited). */
  async run(): Promise<(StepAck | null)[]> {
    try {
      const reduced = await this.combine();
      for (const r of reduced) if (r) this.deps.metrics.reductionBytes.inc(r.bytes);
      const groups = Array.from({ length: this.deps.nStages }, (_, s) => {
        const g = this.deps.stages.replicas(s);
        if (g.length === 0 && this.visited(s)) throw new IterationAbandoned(s, []);
        return g;
      });
      this.current = BarrierPhase.Norms;
      const own = this.deps.dpMode === 'diloco' ? await this.race(Promise.all(groups.map((g, s) => this.largestOwnNorm(g, s)))) : null;
      const norms = own
        ? own.map((o) => o.norm)
        : await this.race(Promise.all(groups.map(async (g, s) => (this.visited(s) ? (await this.deps.ask.first(this.auditors(g), s, 'grad_norm', this.iteration, gradNormAckSchema)).preClipNorm : null))));
      this.current = BarrierPhase.Screen;
      // The own-gradient audit's evidence: the norm of the sum the coordinator computed, where it summed one.
      await this.screen(norms, (s) => own?.[s]!.tab ?? reduced[s]?.largest ?? groups[s]![0]!, norms.map((n, s) => reduced[s]?.norm ?? n));
      this.current = BarrierPhase.Step;
      const acks = await this.step(groups);
      this.current = BarrierPhase.Done;
      // An own outlier accepted unverified keeps this iteration's stage norms out of the baselines.
      this.deps.screening.accept(norms, this.deps.review?.unverifiedIn(this.iteration) ?? (this.deps.ownAudit?.keepOutOfBaselines(this.iteration) ? () => false : null));
      return acks;
    } finally {
      this.close();
    }
  }

  /**
   * Phases rerun and combine: each stage with several replicas combines their gradients. A
   * replica that went away before its gradient was combined: the hops it held run again on its
   * siblings and the stage combines again. A replica that missed the combined gradient is dropped
   * (it would step with a partial one).
   */
  private async combine(): Promise<(Reduction | null)[]> {
    const { events } = this.deps;
    const it = this.iteration;
    const reduced: (Reduction | null)[] = new Array<Reduction | null>(this.deps.nStages).fill(null);
    let todo = Array.from({ length: this.deps.nStages }, (_, s) => s).filter((s) => this.visited(s));
    for (let round = 0; todo.length > 0; round++) {
      this.current = BarrierPhase.Rerun;
      const rerun = await this.race(this.pass.rerunGone());
      if (rerun > 0) events.add('recovery', `iteration ${it}: ${rerun} hop task(s) of lost replica(s) ran again on their siblings at the barrier`, { iteration: it, rerun });
      this.current = BarrierPhase.Combine;
      const results = await this.race(Promise.allSettled(todo.map((s) => this.combineStage(s))));
      const retry: number[] = [];
      for (const [i, r] of results.entries()) {
        const s = todo[i]!;
        if (r.status === 'fulfilled') {
          reduced[s] = r.value;
          for (const v of r.value?.missed ?? []) this.deps.unresponsive(v, `did not take the combined gradient of iteration ${it}`);
        } else if (r.reason instanceof ReplicaGone && round + 1 < MAX_REDUCTION_ROUNDS) {
          // Lost (its hops run again next round) or on a blip (it answers again when back).
          await this.race(this.settled(r.reason.tabs, s));
          retry.push(s);
        } else if (r.reason instanceof IterationAbandoned) {
          throw r.reason;
        } else {
          throw new IterationAbandoned(s, [], `stage ${s} could not combine its replicas' gradients: ${(r.reason as Error).message}`);
        }
      }
      todo = retry;
    }
    return reduced;
  }

  /** diloco: each replica's own gradient norm; the stage's is the largest (non-finite wins), blamed on its replica. */
  private async largestOwnNorm(g: Volunteer[], s: number): Promise<{ norm: number; tab: Volunteer }> {
    const acks = await this.deps.ask.each(g, s, 'grad_norm', this.iteration, gradNormAckSchema);
    let best: { norm: number; tab: Volunteer } | null = null;
    for (const [i, a] of acks.entries()) if (a && (!best || !Number.isFinite(a.preClipNorm) || a.preClipNorm > best.norm)) best = best && !Number.isFinite(best.norm) ? best : { norm: a.preClipNorm, tab: g[i]! };
    if (!best) throw new IterationAbandoned(s, [], `no replica of stage ${s} answered for its gradient-norm`);
    return best;
  }

  /** The replicas of a group whose gradients (and norm) count: all but a suspect under audit. */
  private auditors(g: Volunteer[]): Volunteer[] {
    const own = this.deps.ownAudit;
    const rest = own ? g.filter((v) => !own.excluded(v)) : g;
    return rest.length > 0 ? rest : g;
  }

  /** One stage's reduction (null: a single replica, which holds the whole gradient, or diloco: each keeps its own). */
  private async combineStage(s: number): Promise<Reduction | null> {
    const { stages, config, stepTimeoutMs, reject, transfer, times } = this.deps;
    const g = stages.replicas(s);
    if (g.length === 0) throw new IterationAbandoned(s, []);
    if (g.length === 1 || this.deps.dpMode === 'diloco') return null;
    try {
      // The first chunk within the adaptive deadline; the whole bundle gets its bytes' time on top.
      const t0 = Date.now();
      const r = await reduceGradients(g, s, this.iteration, config, times.deadline(COMBINE_KEY, BARRIER_DEADLINE, stepTimeoutMs), reject, transfer, this.auditors(g));
      times.record(COMBINE_KEY, Date.now() - t0);
      return r;
    } catch (e) {
      const away = g.filter((v) => !v.socket.connected || !stages.replicas(s).includes(v));
      if (away.length > 0) throw new ReplicaGone(away);
      throw e;
    }
  }

  /** Waits (at most the step timeout) until each tab is back on its socket or no longer serves `s`. */
  private async settled(tabs: Volunteer[], s: number): Promise<void> {
    const t0 = Date.now();
    const isSettled = () => tabs.every((v) => v.socket.connected || !this.deps.stages.replicas(s).includes(v));
    while (!isSettled() && Date.now() - t0 < this.deps.stepTimeoutMs) await new Promise((r) => setTimeout(r, 20));
  }

  /**
   * Phase screen: a relay rule's suspect is audited first (suspect-review.ts: accepted, the
   * iteration dropped, or convicted); a culprit is quarantined and the iteration abandoned, so its
   * contribution is never applied.
   */
  private async screen(norms: (number | null)[], largest: (stage: number) => Volunteer, evidence: (number | null)[] = norms): Promise<void> {
    const { screening, stages, metrics, events, quarantine, review, ownAudit } = this.deps;
    const excused = review?.excused(this.iteration);
    let cleared = false;
    // A retry that ran without a suspect of an own outlier: its norms are the audit's evidence.
    let judged = norms;
    const own = ownAudit?.check(this.iteration, evidence);
    if (own?.verdict === 'mismatch') {
      const reason = `stage ${own.stage}'s ${own.why}`;
      if (stages.isReplica(own.suspect)) quarantine(own.suspect, reason);
      throw new IterationAbandoned(own.stage, [], `stage ${own.stage}'s outlier gradient did not reproduce without ${own.suspect.id}`);
    }
    if (own?.verdict === 'match') judged = masked(norms, own.stage);
    for (let round = 0; ; round++) {
      const verdict = screening.judge(judged, largest, excused);
      if (!verdict) return;
      const serving = stages.isReplica(verdict.culprit);
      // A relayed-frame jump of a tab that is already gone changes nothing: the iteration goes on.
      if (verdict.rule === 'jump' && !serving) return;
      // A stage's own outlier left once the flows into it were audited and found honest: explained.
      if (verdict.rule === null && cleared) return;
      const norm = evidence[verdict.stage];
      // A finite own outlier is a suspicion (own-gradient-audit.ts); a non-finite one is its own evidence.
      if (verdict.rule === null && ownAudit && typeof norm === 'number' && Number.isFinite(norm) && Number.isFinite(norms[verdict.stage] ?? Number.NaN)) {
        if (!serving) throw new IterationAbandoned(verdict.stage, [], `${verdict.abandon} (${verdict.culprit.id}, gone since)`);
        const r = ownAudit.suspect(this.iteration, verdict.stage, verdict.culprit, norm, verdict.reason);
        if (r.outcome === 'accept' && round < MAX_AUDIT_ROUNDS) {
          judged = masked(judged, verdict.stage);
          continue;
        }
        throw new IterationAbandoned(verdict.stage, [], `${verdict.abandon}: ${r.why}, iteration dropped`);
      }
      if (review && verdict.suspect && verdict.rule && serving) {
        const r = await this.race(review.review(verdict.suspect, verdict.rule, this.iteration));
        if (r.outcome === 'accept' && round < MAX_AUDIT_ROUNDS) {
          cleared = true;
          continue;
        }
        if (r.outcome !== 'convict') throw new IterationAbandoned(verdict.stage, [], `${verdict.abandon}: suspicion (${r.why}), iteration dropped`);
        verdict.reason = `${verdict.reason}; audit: ${r.why}`;
      }
      if (verdict.rule) metrics.relayBlame.inc({ rule: verdict.rule });
      if (serving || verdict.rule === null) quarantine(verdict.culprit, verdict.reason);
      else events.add('run', `${verdict.culprit.id} (gone) ${verdict.reason}`, { volunteer: verdict.culprit.id, stage: verdict.stage });
      throw new IterationAbandoned(verdict.stage, [], verdict.abandon);
    }
  }

  /**
   * Phase step: every replica clips and steps. A stage lost now does not undo the step on the
   * others (socket order: they get the step before the abandon), so the iteration counts.
   */
  private async step(groups: Volunteer[][]): Promise<(StepAck | null)[]> {
    const { ask, progress, events } = this.deps;
    const it = this.iteration;
    return this.race(
      Promise.all(
        groups.map(async (g, s) => {
          if (!this.visited(s)) return null;
          const all = await ask.each(g, s, 'step', it, stepAckSchema);
          // Whoever went away missed the step: back from a blip it would be out of step with the
          // stages that took it, so it is dropped (with every replica gone, the stage is rebuilt).
          for (const [i, a] of all.entries()) {
            if (a === null) this.deps.unresponsive(g[i]!, `missed the optimizer step of iteration ${it}`);
            else g[i]!.lastStepMs = a.stepMs;
          }
          const stepped = all.find((a) => a !== null);
          if (!stepped) throw new IterationAbandoned(s, [], `no replica of stage ${s} took the optimizer step`);
          return stepped;
        }),
      ),
    ).catch((e: unknown) => {
      if (e instanceof IterationAbandoned) {
        progress.moveTo(it + 1);
        events.add('run', `stage ${e.stage} lost during the optimizer step of iteration ${it}: the surviving stages applied it; the run continues at iteration ${progress.iteration}`);
      }
      throw e;
    });
  }
}
