/**
 * The stage table: which tabs serve which stage. It is the one owner of that state and the only
 * writer of a volunteer's `stage`. A stage is served by a *group* of 1..k replicas; a tab is
 * first *reserved* for a stage (its assignment is on the way) and becomes a replica only when it
 * acknowledged the assignment, so nothing routes work to a tab that does not hold the stage yet.
 *
 * A stage with no replica is *vacant*: either its weights are being rebuilt (after its last
 * replica was lost), or they are ready (`pending`: rebuilt, handed over, or the seed) and wait for
 * the next tab. Two tabs never hold one stage's pending weights as different things: every tab
 * that takes a vacant stage gets the same pending bundle, so they start as exact replicas.
 */
import type { Volunteer } from '../tabs/registry.js';

/** A vacant stage's weights waiting for a tab (null weights = build from the seed). */
export interface PendingStage {
  /** A stage-state bundle (weights, optionally Adam state), or null for the seed. */
  weights: Uint8Array | null;
  reason: string;
  lrScale: number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export class StageTable {
  private groups: Set<Volunteer>[];
  /** Tabs whose assignment is on the way, and the stage. */
  private reserved = new Map<Volunteer, number>();
  private pending: (PendingStage | null)[];
  private rebuilding = new Set<number>();
  /** Vacant stages whose pending weights fell behind (SkipPipe trained around them): rebuilt before a tab takes them. */
  private stale = new Set<number>();
  private listeners = new Set<() => void>();

  constructor(readonly nStages: number) {
    this.groups = Array.from({ length: nStages }, () => new Set<Volunteer>());
    this.pending = Array.from({ length: nStages }, () => ({ weights: null, reason: 'start', lrScale: 1 }));
  }

  /** Called after every change (gauges, status broadcasts). */
  onChange(l: () => void): void {
    this.listeners.add(l);
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }

  // -- reads ---------------------------------------------------------------------------------

  /** The stage's replicas, in the order they joined. */
  replicas(stage: number): Volunteer[] {
    return [...(this.groups[stage] ?? [])];
  }

  /** Every tab serving some stage. */
  allReplicas(): Volunteer[] {
    return this.groups.flatMap((g) => [...g]);
  }

  size(stage: number): number {
    return this.groups[stage]?.size ?? 0;
  }

  /** The first replica of a stage (the one that has served it longest). */
  owner(stage: number): Volunteer | undefined {
    return this.groups[stage]?.values().next().value;
  }

  isReplica(v: Volunteer): boolean {
    return v.stage !== null && this.groups[v.stage]!.has(v);
  }

  /** The stage a tab is reserved for (assignment on the way), if any. */
  reservedFor(v: Volunteer): number | null {
    return this.reserved.get(v) ?? null;
  }

  reservations(stage: number): number {
    let n = 0;
    for (const s of this.reserved.values()) if (s === stage) n++;
    return n;
  }

  isVacant(stage: number): boolean {
    return this.size(stage) === 0;
  }

  /** Vacant stages whose weights are ready for a tab, in stage order. */
  fillable(): number[] {
    const out: number[] = [];
    for (let s = 0; s < this.nStages; s++) if (this.isVacant(s) && this.pending[s] && !this.rebuilding.has(s) && !this.stale.has(s)) out.push(s);
    return out;
  }

  vacantCount(): number {
    let n = 0;
    for (let s = 0; s < this.nStages; s++) if (this.isVacant(s)) n++;
    return n;
  }

  /** Vacant stages whose pending weights are stale (markStale), in stage order. */
  staleStages(): number[] {
    return [...this.stale].filter((s) => this.isVacant(s)).sort((a, b) => a - b);
  }

  isRebuilding(stage: number): boolean {
    return this.rebuilding.has(stage);
  }

  pendingFor(stage: number): PendingStage | null {
    return this.isVacant(stage) ? this.pending[stage] ?? null : null;
  }

  /** Every stage has at least one replica. */
  ready(): boolean {
    for (const g of this.groups) if (g.size === 0) return false;
    return true;
  }

  /** Tabs serving some stage. */
  activeCount(): number {
    let n = 0;
    for (const g of this.groups) n += g.size;
    return n;
  }

  // -- writes --------------------------------------------------------------------------------

  /** `v` is about to be assigned `stage`: it serves nothing until `confirm`. */
  reserve(stage: number, v: Volunteer): void {
    if (v.stage !== null || this.reserved.has(v)) throw new Error(`${v.id} already holds or is joining a stage`);
    if (!(stage >= 0 && stage < this.nStages)) throw new Error(`no stage ${stage}`);
    this.reserved.set(v, stage);
  }

  /** `v` acknowledged its assignment: it is now a replica of the stage it was reserved for. */
  confirm(v: Volunteer): number {
    const stage = this.reserved.get(v);
    if (stage === undefined) throw new Error(`${v.id} was not reserved for a stage`);
    this.reserved.delete(v);
    const wasVacant = this.isVacant(stage);
    this.groups[stage]!.add(v);
    (v as Mutable<Volunteer>).stage = stage;
    if (wasVacant) this.pending[stage] = null;
    this.changed();
    return stage;
  }

  /** The assignment failed or came too late: `v` holds nothing; the stage is as it was. */
  release(v: Volunteer): void {
    if (this.reserved.delete(v)) this.changed();
  }

  /**
   * `v` no longer serves its stage (it left, was dropped, or moves elsewhere). Returns the stage
   * and whether it was the last replica (the stage is then vacant and needs a recovery).
   */
  remove(v: Volunteer): { stage: number; last: boolean } | null {
    this.reserved.delete(v);
    const stage = v.stage;
    if (stage === null) return null;
    this.groups[stage]!.delete(v);
    (v as Mutable<Volunteer>).stage = null;
    const last = this.groups[stage]!.size === 0;
    if (last) this.pending[stage] = null;
    this.changed();
    return { stage, last };
  }

  /** A vacant stage's weights are being rebuilt: no tab takes it until `setPending`. */
  markRebuilding(stage: number): void {
    this.rebuilding.add(stage);
    this.changed();
  }

  /**
   * The run trains on without vacant `stage` (SkipPipe skips it): its pending weights fall behind
   * its neighbours', so no tab takes them until the stage is rebuilt (`setPending` clears this).
   */
  markStale(stage: number): void {
    if (!this.isVacant(stage) || this.stale.has(stage)) return;
    this.stale.add(stage);
    this.changed();
  }

  /** A vacant stage's weights are ready for the next tab. */
  setPending(stage: number, p: PendingStage): void {
    this.rebuilding.delete(stage);
    this.stale.delete(stage);
    this.pending[stage] = p;
    this.changed();
  }

  /** Marks a resumed tab as the replica of the stage it still holds (no weights move). */
  adopt(stage: number, v: Volunteer): void {
    this.reserve(stage, v);
    this.confirm(v);
  }
}
