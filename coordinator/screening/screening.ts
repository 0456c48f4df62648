/**
 * Screening of untrusted results at the barrier, before anyone steps: each stage's gradient norm
 * against its own history (outliers.ts), and the norms of the frames each tab relayed
 * (relay-norms.ts), so that an inflated gradient is blamed on the tab that inflated what flowed
 * into the stage, not on its victim. One object owns both histories; the barrier asks it for a
 * verdict and tells it when an iteration was applied.
 */
import type { Volunteer } from '../tabs/registry.js';
import { NormOutlierDetector } from './outliers.js';
import { RelayNorms, type Excused, type RelayDirection, type RelaySuspect } from './relay-norms.js';
import { HopEvidence, type HopRecord } from './hop-evidence.js';
import { LossWarmup } from './loss-warmup.js';

/** Who to quarantine for an iteration's numbers, and why the iteration is abandoned. */
export interface Verdict {
  /** The tab to blame (it may have gone meanwhile: then the event only names it). */
  culprit: Volunteer;
  /** The stage the culprit served when it sent what is blamed. */
  stage: number;
  reason: string;
  /** Why the iteration is abandoned (for the event log). */
  abandon: string;
  /** Which relay rule found it (`upstream`: a stage's outlier traced to a sender; `jump`), or null for a stage's own gradient. */
  rule: 'upstream' | 'jump' | null;
  /** The relay rules' suspect (its flow: what an audit re-runs); absent for a stage's own gradient. */
  suspect?: RelaySuspect;
}

export class Screening {
  private outliers: NormOutlierDetector;
  private relayNorms: RelayNorms;
  /** The largest frame of each flow of the pass in progress, with its inputs (what an audit re-runs). */
  readonly evidence = new HopEvidence();
  /** A wider `jump` threshold while the loss falls fast (loss-warmup.ts). */
  readonly warmup = new LossWarmup();

  /** `strictness(v)`: the factor on `v`'s relay thresholds (below 1 on probation: probation.ts). */
  constructor(nStages: number, outlierFactor: number, strictness?: (v: Volunteer) => number) {
    this.outliers = new NormOutlierDetector(nStages, outlierFactor);
    this.relayNorms = new RelayNorms(outlierFactor, 20, 5, strictness);
  }

  /** A training pass starts: relayed norms (and the hop evidence) are collected afresh. */
  beginIteration(): void {
    this.relayNorms.begin();
    this.evidence.begin();
  }

  /**
   * A checked training frame `sender` (serving `stage`) relayed, at hop `hop` of its microbatch's
   * path, towards stage `into`; `record`: the frame and the hop's inputs, where the pass kept them.
   */
  recordFrame(sender: Volunteer, stage: number, dir: RelayDirection, into: number, norm: number, hop = 0, record?: Omit<HopRecord, 'sender' | 'stage' | 'dir' | 'hop' | 'norm'>): void {
    this.relayNorms.record(sender, stage, dir, into, norm, hop);
    if (record) this.evidence.keep({ ...record, sender, stage, dir, hop, norm });
  }

  /**
   * The verdict on an iteration's gradient norms (index = stage): a stage's outlier is traced to
   * the relayed frames that flowed into it (the sender that inflated them is blamed), else blamed
   * on the stage's replica with the largest own gradient (`largest`); then relayed frames that
   * jumped against their sender's history while its inputs did not (an inflation that may not show
   * in any gradient norm, e.g. activations that a normalisation absorbs). Null: nothing to blame.
   */
  judge(norms: readonly (number | null)[], largest: (stage: number) => Volunteer, excused?: Excused): Verdict | null {
    const outlier = this.outliers.screen(norms);
    if (outlier) {
      const upstream = this.relayNorms.blame(outlier.stage, excused);
      if (upstream) {
        return {
          culprit: upstream.sender,
          stage: upstream.stage,
          reason: `${upstream.reason}, which made stage ${outlier.stage}'s ${outlier.reason}`,
          abandon: `stage ${outlier.stage}'s outlier gradient came from what stage ${upstream.stage} relayed`,
          rule: 'upstream',
          suspect: upstream,
        };
      }
      // Flows into the stage did jump, but each chain of them runs through a flow already audited
      // and found honest (or accepted on the retry) in an earlier attempt of this iteration: the
      // outlier is explained, as within one attempt (barrier.ts `cleared`), not the stage's own.
      const explained = excused !== undefined && this.relayNorms.blame(outlier.stage) !== null;
      if (!explained) {
        return { culprit: largest(outlier.stage), stage: outlier.stage, reason: outlier.reason, abandon: `stage ${outlier.stage} sent an outlier gradient`, rule: null };
      }
    }
    // While the loss falls fast the unbacked rule needs a wider jump (a gradient outlier, which
    // backs `upstream`, has its absolute floor instead).
    const jump = this.relayNorms.screen(excused, this.warmup.factor());
    if (jump) {
      return {
        culprit: jump.sender,
        stage: jump.stage,
        reason: jump.reason,
        abandon: `stage ${jump.stage} relayed outlier ${jump.dir === 'grad' ? 'gradients' : 'activations'}`,
        rule: 'jump',
        suspect: jump,
      };
    }
    return null;
  }

  /**
   * The iteration with these norms was applied: they join the histories, except (`unverified`)
   * the flows accepted without verification, and then the stage norms of that iteration too.
   */
  accept(norms: readonly (number | null)[], unverified?: Excused | null): void {
    // An iteration accepted with an unverified suspicion: nothing of it becomes a baseline.
    if (!unverified) this.outliers.accept(norms);
    this.relayNorms.commit(unverified ?? undefined);
  }

  /** The mean training loss of an applied iteration (the warm-up watches it fall). */
  observeLoss(loss: number): void {
    this.warmup.record(loss);
  }

  /** A tab no longer serves a stage (its relayed-frame history goes; the stage's stays). */
  forget(v: Volunteer): void {
    this.relayNorms.forget(v);
  }
}
