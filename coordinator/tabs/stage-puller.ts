/**
 * Pulls weights (or a replica, or a full state) of a stage from the tabs serving it, for recovery,
 * checkpoints and replica refreshes. Nothing pulled is trusted: every bundle goes through the
 * caller's check (bundle-check.ts) before it is used.
 *
 * A stage with several replicas is asked one replica at a time: when one fails, the next is asked.
 * A tab that does not answer in time is unresponsive: counted as `silent`, dropped (its own stage
 * goes down the recovery ladder). A tab whose bundle fails the check committed an offence (counted
 * as `bad_bundle`); after enough offences the connection layer drops it. A tab that refuses (it
 * does not hold the part asked for, e.g. a replica lost with its previous tab) is not punished.
 */
import type { WeightParts } from '../../shared/protocol/events.js';
import type { Volunteer } from './registry.js';
import { AskError, ASK_TIMEOUT_MS } from './ask-stage.js';
import type { BundleTransfer } from './bundle-transfer.js';
import { BundleError } from './bundle-check.js';

export interface Pulled<T> {
  value: T;
  /** Bytes that crossed the wire from the tab. */
  bytes: number;
  from: Volunteer;
}

export interface StagePullerDeps {
  transfer: BundleTransfer;
  /** How long a tab may take to send weights or a full state (default ASK_TIMEOUT_MS). */
  timeoutMs?: { weights: number; state: number };
  /** The tabs serving a stage now. */
  replicas: (stage: number) => readonly Volunteer[];
  /** A tab broke the protocol (an offence, see VolunteerConnections.reject). */
  reject: (v: Volunteer, reason: string, message: string) => void;
  /** A tab did not answer: drop it (not awaited; its stage is recovered on its own). */
  unresponsive: (v: Volunteer, why: string) => void;
}

export class StagePuller {
  constructor(private deps: StagePullerDeps) {}

  /** `parts` of `stage`, checked by `check`, from the first of its replicas that delivers. */
  async pull<T>(stage: number, parts: WeightParts, check: (raw: Uint8Array) => T): Promise<Pulled<T>> {
    const tabs = [...this.deps.replicas(stage)];
    if (tabs.length === 0) throw new Error(`stage ${stage} has no volunteer`);
    return this.pullFrom(tabs, parts, check);
  }

  /** `parts`, checked by `check`, from the first of `tabs` (in order) that delivers. */
  async pullFrom<T>(tabs: readonly Volunteer[], parts: WeightParts, check: (raw: Uint8Array) => T): Promise<Pulled<T>> {
    const limits = this.deps.timeoutMs ?? ASK_TIMEOUT_MS;
    const timeout = parts === 'state' || parts === 'replica:stage' ? limits.state : limits.weights;
    const failures: string[] = [];
    for (const v of tabs) {
      try {
        const raw = await this.deps.transfer.pull(v, { event: 'get_weights', parts }, timeout);
        return { value: check(raw), bytes: raw.byteLength, from: v };
      } catch (e) {
        failures.push((e as Error).message);
        this.punish(v, parts, e);
      }
    }
    throw new Error(failures.join('; '));
  }

  private punish(v: Volunteer, parts: WeightParts, e: unknown): void {
    if (e instanceof BundleError) this.deps.reject(v, 'bad_bundle', `${parts}: ${e.message}`);
    else if (e instanceof AskError && e.failure === 'invalid') this.deps.reject(v, 'bad_bundle', e.message);
    else if (e instanceof AskError && e.failure === 'timeout') this.deps.unresponsive(v, `no answer to a weight request (${parts}): ${e.message}`);
  }
}
