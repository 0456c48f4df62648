/**
 * The volunteer registry: who is connected, what they can do, which stage each serves, and who
 * is a spare. Pure bookkeeping; the scheduler decides assignments.
 */
import type { Socket } from 'socket.io';
import type { Capabilities, ServerToVolunteer, VolunteerToServer, VolunteerStats } from '../shared/protocol/events.js';

export type CoordinatorSocket = Socket<VolunteerToServer, ServerToVolunteer>;

export interface Volunteer {
  /** Public short id (not the socket id). */
  id: string;
  socket: CoordinatorSocket;
  caps: Capabilities;
  /** Stage served, or null for a spare. */
  stage: number | null;
  joinedAt: number;
  stats: VolunteerStats | null;
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

  all(): Volunteer[] {
    return [...this.byId.values()];
  }

  spares(): Volunteer[] {
    return this.all().filter((v) => v.stage === null);
  }

  /** The volunteer serving `stage`, if any. */
  owner(stage: number): Volunteer | undefined {
    return this.all().find((v) => v.stage === stage);
  }

  /** The fastest spare (highest measured throughput). */
  bestSpare(): Volunteer | undefined {
    return this.spares().sort((a, b) => b.caps.throughputGflops - a.caps.throughputGflops)[0];
  }
}
