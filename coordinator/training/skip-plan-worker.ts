/**
 * The collision-aware skip scheduler in a worker thread (started by skip-plan-ahead.ts): the
 * conflict-based search takes tens to hundreds of ms on a busy machine, which on the
 * coordinator's loop would sit inside the iteration (every tab idle) or stall relaying. Requests
 * come from the coordinator itself (already checked there); replies carry the orders or an error.
 */
import { parentPort } from 'node:worker_threads';
import { collisionSchedule } from '../../shared/schedule/skip-collision.js';
import type { ScheduleRequest } from '../../shared/schedule/skip-request.js';
import type { StageCosts } from '../../shared/schedule/skip-timing.js';

const port = parentPort;
if (!port) throw new Error('skip-plan-worker.ts runs as a worker thread');

port.on('message', (m: { id: number; req: ScheduleRequest; costs: StageCosts }) => {
  try {
    const t0 = performance.now();
    const orders = collisionSchedule(m.req, m.costs).orders;
    port.postMessage({ id: m.id, orders, ms: performance.now() - t0 });
  } catch (e) {
    port.postMessage({ id: m.id, error: (e as Error).message });
  }
});
