/**
 * The run's event log: joins, leaves, recoveries, rejected messages. Kept in memory (bounded) for
 * the dashboard and mirrored to the logger.
 */
import type { Logger } from './log.js';

export type SwarmEventKind = 'join' | 'leave' | 'assign' | 'recovery' | 'rejected' | 'run' | 'quarantine';

export interface SwarmEvent {
  time: number;
  kind: SwarmEventKind;
  message: string;
  data?: Record<string, unknown>;
}

export class EventLog {
  private events: SwarmEvent[] = [];
  private listeners = new Set<(e: SwarmEvent) => void>();
  constructor(private log: Logger, private max = 2000) {}

  add(kind: SwarmEventKind, message: string, data?: Record<string, unknown>): SwarmEvent {
    const e: SwarmEvent = { time: Date.now(), kind, message, ...(data ? { data } : {}) };
    this.events.push(e);
    if (this.events.length > this.max) this.events.splice(0, this.events.length - this.max);
    this.log.info({ event: kind, ...data }, message);
    for (const l of this.listeners) l(e);
    return e;
  }

  list(kind?: SwarmEventKind): SwarmEvent[] {
    return kind ? this.events.filter((e) => e.kind === kind) : [...this.events];
  }

  subscribe(l: (e: SwarmEvent) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
