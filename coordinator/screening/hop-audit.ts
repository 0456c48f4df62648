/**
 * One audit of a suspect hop (evidence before conviction, issue 22): the hop a suspect tab ran is
 * run again, from the very inputs it had (hop-evidence.ts), on a sibling replica that holds the
 * same stage weights, and the two outputs are compared.
 *
 *   forward   activations: the hop's forward as an `E` task (forward only: no stash, no gradient,
 *             so the sibling's state is untouched). Gradients: the hop's forward as an `F` task
 *             (the sibling stashes it) ...
 *   backward  ... then its backward (`B`) with the gradient (or loss scale) the suspect received:
 *             this accumulates a gradient on the sibling, so the iteration is dropped afterwards.
 *   compare   the sibling's frame against the suspect's: relative L2 difference
 *             ||a - b|| / max(||a||, ||b||). Within the wire's tolerance: `match` (the suspect did
 *             what its weights compute: the jump is honest). Beyond it: `mismatch`.
 *   done      a verdict; `unverifiable` when the sibling does not answer in time, answers with a
 *             frame that fails the relay check, or goes away.
 *
 * Every answer is checked like a relayed frame (relay-check.ts) before its values are read. The
 * sibling's answer is claimed by the audit (scheduler.ts routes it here before the pass).
 */
import type { OutMeta, TaskMeta } from '../../shared/protocol/events.js';
import { decodeTensorFrame, FrameError } from '../../shared/protocol/index.js';
import type { WireEncoding } from '../../shared/protocol/wire-encoding.js';
import type { Volunteer } from '../tabs/registry.js';
import type { FrameRules, TaskSender } from '../training/task-book.js';
import { checkRelayFrame } from './relay-check.js';
import type { HopRecord } from './hop-evidence.js';

export enum AuditPhase {
  Forward = 'forward',
  Backward = 'backward',
  Compare = 'compare',
  Done = 'done',
}

export type AuditVerdict = 'match' | 'mismatch' | 'unverifiable';

export interface AuditOutcome {
  verdict: AuditVerdict;
  auditor: Volunteer;
  /** Relative L2 difference of the two outputs (null when unverifiable). */
  diff: number | null;
  /** Norm of the auditor's output (null when unverifiable). */
  auditorNorm: number | null;
  why: string;
}

/**
 * Relative L2 difference two honest replicas' outputs of one hop may show, per wire encoding.
 * Both sides quantise the same way, so the wire adds little; the allowance is for replicas on
 * different backends (WebGPU vs CPU float32 rounding through a stage's blocks). Measured on Node
 * volunteers: 0 in every encoding (the same backend computes bit-identical frames), see
 * docs/security.md; a liar's 1e4 inflation differs by ~1.
 */
export const AUDIT_TOLERANCE: Record<WireEncoding, number> = { f32: 0.02, f16: 0.02, int8: 0.05 };

/** ||a - b|| / max(||a||, ||b||) of two equally long vectors (0 for two zero vectors). */
export function relativeDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let d = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    d += (x - y) * (x - y);
    na += x * x;
    nb += y * y;
  }
  const scale = Math.sqrt(Math.max(na, nb));
  if (!Number.isFinite(d) || !Number.isFinite(scale)) return Number.POSITIVE_INFINITY;
  return scale === 0 ? 0 : Math.sqrt(d) / scale;
}

export interface HopAuditDeps {
  sender: TaskSender;
  frames: FrameRules;
  /** How long the auditor may take for each of its tasks. */
  timeoutMs: number;
}

export class HopAudit {
  private current = AuditPhase.Forward;
  private expect: { dir: TaskMeta['dir'] } | null = null;
  private finish: (o: AuditOutcome) => void = () => {};
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    readonly record: HopRecord,
    readonly auditor: Volunteer,
    private deps: HopAuditDeps,
  ) {}

  get phase(): AuditPhase {
    return this.current;
  }

  /** Runs the audit; resolves with its verdict (never rejects). */
  run(): Promise<AuditOutcome> {
    return new Promise<AuditOutcome>((resolve) => {
      this.finish = resolve;
      const r = this.record;
      if (r.dir === 'act') this.send({ ...r.forward, dir: 'E' }, r.input, r.targets);
      else this.send({ ...r.forward, dir: 'F' }, r.input, r.targets);
    });
  }

  /** Whether `meta` from `v` answers this audit's outstanding task (then onOut takes it). */
  claims(v: Volunteer, meta: OutMeta): boolean {
    const f = this.record.forward;
    return this.expect !== null && v === this.auditor && meta.dir === this.expect.dir && meta.attempt === f.attempt && meta.mb === f.mb && meta.hop === f.hop;
  }

  /** The auditor's answer to the outstanding task. */
  onOut(meta: OutMeta, frame: Uint8Array | null): void {
    if (this.timer) clearTimeout(this.timer);
    this.expect = null;
    const r = this.record;
    if (r.dir === 'grad' && meta.dir === 'F') {
      this.current = AuditPhase.Backward;
      const { lossScale: _omit, ...fwd } = r.forward;
      this.send({ ...fwd, dir: 'B', ...(r.lossScale !== undefined ? { lossScale: r.lossScale } : {}) }, r.gradIn, null);
      return;
    }
    this.current = AuditPhase.Compare;
    if (!frame) return this.end('unverifiable', null, null, `the auditor sent no frame`);
    let norm: number;
    try {
      const { shape, wire, maxBytes } = this.deps.frames;
      norm = checkRelayFrame(frame, { kind: r.dir, iteration: r.forward.iteration, microbatch: r.forward.mb, hop: r.forward.hop, fromStage: r.stage, shape, wire }, maxBytes);
    } catch (e) {
      return this.end('unverifiable', null, null, `the auditor's frame failed the relay check (${e instanceof FrameError ? e.reason : 'frame'}: ${(e as Error).message})`);
    }
    // A frame sent peer to peer is known here by its receiver's norm report only: compare norms.
    const diff = r.output ? relativeDifference(decodeTensorFrame(r.output).data, decodeTensorFrame(frame).data) : Math.abs(norm - r.norm) / Math.max(norm, r.norm, 1e-30);
    const tol = AUDIT_TOLERANCE[this.deps.frames.wire];
    if (diff <= tol) this.end('match', diff, norm, `the sibling's re-run matches (relative difference ${diff.toExponential(2)} <= ${tol})`);
    else this.end('mismatch', diff, norm, `the sibling's re-run differs (relative difference ${diff.toExponential(2)} > ${tol}; norms ${r.norm.toExponential(2)} sent, ${norm.toExponential(2)} re-run)`);
  }

  /** The auditor went away (or the barrier gave up): no verdict from it. */
  cancel(why: string): void {
    if (this.current !== AuditPhase.Done) this.end('unverifiable', null, null, why);
  }

  private send(meta: TaskMeta, input: Uint8Array | null, targets: Uint8Array | null): void {
    this.expect = { dir: meta.dir };
    this.timer = setTimeout(() => this.cancel(`the auditor ${this.auditor.id} did not answer within ${this.deps.timeoutMs} ms`), this.deps.timeoutMs);
    try {
      this.deps.sender.send(this.auditor, meta, input, targets);
    } catch (e) {
      this.cancel(`the audit task could not be sent: ${(e as Error).message}`);
    }
  }

  private end(verdict: AuditVerdict, diff: number | null, auditorNorm: number | null, why: string): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.expect = null;
    this.current = AuditPhase.Done;
    this.finish({ verdict, auditor: this.auditor, diff, auditorNorm, why });
  }
}
