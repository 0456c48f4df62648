/**
 * The volunteer's life cycle inside the Web Worker.
 *
 * `runVolunteer(ctx)` is where the coordinator socket and pipeline-stage
 * training will plug in. Today it only does the parts that exist:
 *   1. pick the fastest working tfjs backend (and say why faster ones were skipped),
 *   2. measure local matmul throughput,
 *   3. report both, then stay "ready" until asked to leave.
 * It deliberately does NOT fake training, a connection, a stage or a loss.
 */
import { measureThroughput, selectBackend } from './backend';
import type { BackendName, StatusFields, VolunteerStatus } from './messages';

export interface VolunteerContext {
  /** Coordinator base URL (from the page's `start` message). */
  url: string;
  /** Backend preference order, fastest first. */
  backends: readonly BackendName[];
  /** Aborted when the page asks the volunteer to leave (`stop`). Leave gracefully, then return. */
  signal: AbortSignal;
  /** Latest status snapshot. */
  status(): Readonly<VolunteerStatus>;
  /** Merge fields into the status and post the snapshot to the page. */
  update(patch: Partial<StatusFields>): void;
  log(level: 'debug' | 'info' | 'warn' | 'error', message: string): void;
}

/** Resolves when `signal` aborts. */
export function whenAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

export async function runVolunteer(ctx: VolunteerContext): Promise<void> {
  ctx.update({ connection: 'initializing', error: null });

  const selection = await selectBackend(ctx.backends, { log: (m) => ctx.log('info', m) });
  ctx.update({ backend: selection.backend, adapter: selection.adapterInfo, skipped: selection.skipped });
  if (ctx.signal.aborted) return;

  const throughputGflops = await measureThroughput();
  ctx.update({ throughputGflops });
  ctx.log('info', `matmul throughput on ${selection.backend}: ${throughputGflops.toFixed(2)} GFLOP/s`);
  if (ctx.signal.aborted) return;

  // --- Coordinator connection + stage training plug in here. ---------------
  // Expected shape: connect socket.io to ctx.url, send a join with
  // { backend, adapter, throughputGflops }, then loop on stage assignments,
  // updating ctx.update({ connection, stage, iteration, stepMs, tokensPerSec,
  // gpuSecondsDonated, lastLoss }). On ctx.signal abort: send a graceful leave,
  // wait for the coordinator's ack (bounded), disconnect, and return.
  ctx.update({ connection: 'ready' });
  await whenAborted(ctx.signal);
}
