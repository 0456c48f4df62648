/**
 * What an audit needs to re-run a suspect hop (hop-audit.ts): the hop's inputs and the frame the
 * suspect sent. Kept for the iteration in progress only, and only for the largest frame of each
 * flow (sender tab, stage, direction, hop of the path): a suspicion (relay-norms.ts) is always
 * about a flow's largest frame, so that is the one an audit compares. Memory is bounded by the
 * flows of one iteration (tabs x hops x 2 directions), not by the microbatches.
 *
 * A record exists only where the pass kept the hop's inputs, i.e. where the stage had siblings
 * (pipeline-pass.ts): without a sibling there is nobody to re-run the hop on anyway.
 */
import type { TaskMeta } from '../../shared/protocol/events.js';
import type { Volunteer } from '../tabs/registry.js';
import type { RelayDirection } from './relay-norms.js';

export interface HopRecord {
  sender: Volunteer;
  stage: number;
  dir: RelayDirection;
  hop: number;
  /** Norm of `output` (as the relay check measured it). */
  norm: number;
  /** The hop's forward task as it was sent (dir `F`): microbatch, segment, attempt. */
  forward: TaskMeta;
  /** The hop's forward input (tokens or an activation frame) and, at the head, its targets. */
  input: Uint8Array;
  targets: Uint8Array | null;
  /** Backward only: the gradient frame the hop received, or null at the head (then `lossScale`). */
  gradIn: Uint8Array | null;
  lossScale?: number;
  /**
   * The frame the suspect sent (what the audit compares with the re-run); null when it went peer
   * to peer (`--transport p2p`): the coordinator has only its receiver's norm report, so the audit
   * compares norms.
   */
  output: Uint8Array | null;
}

export class HopEvidence {
  private records = new Map<string, HopRecord>();

  /** A training pass starts: what the last one kept goes. */
  begin(): void {
    this.records.clear();
  }

  /** Keeps `r` if it is its flow's largest frame so far. */
  keep(r: HopRecord): void {
    const k = recordKey(r.sender, r.stage, r.dir, r.hop);
    const cur = this.records.get(k);
    if (!cur || r.norm > cur.norm) this.records.set(k, r);
  }

  /** The largest frame of the flow, with the inputs it was computed from, if kept. */
  of(sender: Volunteer, stage: number, dir: RelayDirection, hop: number): HopRecord | undefined {
    return this.records.get(recordKey(sender, stage, dir, hop));
  }

  /** Records held (tests: the bound). */
  get size(): number {
    return this.records.size;
  }
}

function recordKey(sender: Volunteer, stage: number, dir: RelayDirection, hop: number): string {
  return `${sender.id}|${stage}:${dir}:${hop}`;
}
