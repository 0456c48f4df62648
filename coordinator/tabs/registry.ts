/**
 * The volunteer registry: who is connected and what they told us. Which stage a tab serves is the
 * stage table's (stage-table.ts): `stage` here is read-only and written only there.
 */
import type { Socket } from 'socket.io';
import type { Capabilities, ServerToVolunteer, VolunteerToServer, VolunteerStats } from '../../shared/protocol/events.js';

export type CoordinatorSocket = Socket<VolunteerToServer, ServerToVolunteer>;

export interface Volunteer {
  /** Public short id (not the socket id). */
  readonly id: string;
  socket: CoordinatorSocket;
  readonly caps: Capabilities;
  /** Stage served (a replica of its group), or null. Written only by the StageTable. */
  readonly stage: number | null;
  readonly joinedAt: number;
  stats: VolunteerStats | null;
  /** The tab's compute for its last iteration (tasks + optimizer step), ms, from its step ack. */
  lastStepMs: number | null;
  /** Validation failures so far. */
  offences: number;
}

export class Registry {
  private byId = new Map<string, Volunteer>();
  private counter = 0;

  add(socket: CoordinatorSocket, caps: Capabilities): Volunteer {
    const id = `v${(++this.counter).toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
    const v: Volunteer = { id, socket, caps, stage: null, joinedAt: Date.now(), stats: null, lastStepMs: null, offences: 0 };
    this.byId.set(id, v);
    return v;
  }

  remove(id: string): Volunteer | undefined {
    const v = this.byId.get(id);
    this.byId.delete(id);
    return v;
  }

  get(id: string): Volunteer | undefined {
    return this.byId.get(id);
  }

  has(v: Volunteer): boolean {
    return this.byId.get(v.id) === v;
  }

  all(): Volunteer[] {
    return [...this.byId.values()];
  }

  get size(): number {
    return this.byId.size;
  }
}
