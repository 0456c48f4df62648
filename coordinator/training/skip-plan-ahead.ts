/**
 * Plans the next iteration's collision-aware skip paths while the current one trains
 * (docs/skippipe.md "Planning off the critical path"). bench:skip-swarm measured the search at
 * 60-300 ms per iteration on the coordinator's loop, inside the iteration where every tab waits.
 * Here the search for iteration i + 1 runs in a worker thread (skip-plan-worker.ts) as soon as
 * iteration i's paths are known, under the rules iteration i + 1 will have if i is applied as
 * planned (its unvisited stages as mustVisit, today's vacant stages, the costs measured so far).
 * The planner takes the result only when the request it would make now is the same one
 * (`key`); otherwise (an abandoned iteration, a stage that emptied) it plans as before.
 *
 * One owner: the SkipPlanner. The worker never keeps the process alive; a failed or slow
 * worker gives null (the caller plans on its own loop) and is not restarted.
 */
import { Worker } from 'node:worker_threads';
import type { ScheduleRequest } from '../../shared/schedule/skip-request.js';
import type { StageCosts } from '../../shared/schedule/skip-timing.js';

/** Longest wait for a planned-ahead result before planning on the loop instead. */
export const PLAN_AHEAD_TIMEOUT_MS = 5000;

interface Ahead {
  key: string;
  result: Promise<number[][] | null>;
}

export class SkipPlanAhead {
  private worker: Worker | null = null;
  private failed = false;
  private nextId = 1;
  private pending = new Map<number, (orders: number[][] | null) => void>();
  private ahead: Ahead | null = null;

  /** Starts planning `req` in the worker; `key` names the request (what take() must match). */
  start(key: string, req: ScheduleRequest, costs: StageCosts): void {
    const w = this.spawn();
    if (!w) return;
    const id = this.nextId++;
    const result = new Promise<number[][] | null>((resolve) => {
      const timer = setTimeout(() => this.settle(id, null), PLAN_AHEAD_TIMEOUT_MS);
      timer.unref();
      this.pending.set(id, (orders) => {
        clearTimeout(timer);
        resolve(orders);
      });
    });
    w.postMessage({ id, req, costs });
    this.ahead = { key, result };
  }

  /** The planned-ahead orders for `key`, or null (none started for it, worker failed or slow). */
  async take(key: string): Promise<number[][] | null> {
    const a = this.ahead;
    this.ahead = null;
    if (!a || a.key !== key) return null;
    return a.result;
  }

  close(): void {
    for (const id of [...this.pending.keys()]) this.settle(id, null);
    void this.worker?.terminate();
    this.worker = null;
    this.failed = true;
  }

  private settle(id: number, orders: number[][] | null): void {
    const r = this.pending.get(id);
    if (!r) return;
    this.pending.delete(id);
    r(orders);
  }

  private spawn(): Worker | null {
    if (this.worker || this.failed) return this.worker;
    try {
      const entry = new URL('./skip-plan-worker.ts', import.meta.url);
      const w = entry.pathname.endsWith('.ts')
        ? new Worker(new URL('../recovery/cpsr-fit-worker-boot.mjs', import.meta.url), { workerData: { entry: entry.href } })
        : new Worker(new URL('./skip-plan-worker.js', import.meta.url));
      w.unref();
      w.on('message', (m: { id?: unknown; orders?: unknown }) => {
        const ok = typeof m?.id === 'number' && Array.isArray(m.orders) && m.orders.every((o) => Array.isArray(o) && o.every((s) => Number.isInteger(s)));
        if (typeof m?.id === 'number') this.settle(m.id, ok ? (m.orders as number[][]) : null);
      });
      const fail = () => {
        this.failed = true;
        this.worker = null;
        for (const id of [...this.pending.keys()]) this.settle(id, null);
      };
      w.on('error', fail);
      w.on('exit', fail);
      this.worker = w;
      return w;
    } catch {
      this.failed = true;
      return null;
    }
  }
}
