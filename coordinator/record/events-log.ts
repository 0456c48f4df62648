/**
 * The run's event log: joins, leaves, recoveries, rejected messages. Kept in memory (bounded) for
 * the dashboard and mirrored to the logger. Messages and data are clipped (clip.ts) before they
 * are kept, logged, stored or pushed: much of their text comes from strangers.
 */
import type { Logger } from './log.js';
import { clipData, clipText } from '../gateway/clip.js';

export type SwarmEventKind = 'join' | 'leave' | 'assign' | 'recovery' | 'rejected' | 'run' | 'quarantine' | 'alert';

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
    const e: SwarmEvent = { time: Date.now(), kind, message: clipText(message), ...(data ? { data: clipData(data) as Record<string, unknown> } : {}) };
    this.events.push(e);
    if (this.events.length > this.max) this.events.splice(0, this.events.length - this.max);
    this.log.info({ event: kind, ...e.data }, e.message);
    for (const l of this.listeners) {
      try {
        l(e); // the store, the operator push: a failing listener must not fail whoever logged the event
      } catch (err) {
        this.log.error({ err: (err as Error)?.message, event: kind }, 'event listener failed');
      }
    }
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
