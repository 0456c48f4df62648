/**
 * The CPSR fitting worker (a node:worker_threads thread, started by cpsr-fitter.ts): fits each
 * stage's predictor on the history it is sent, keeps the fitted model per stage (a few KB), and
 * predicts a lost stage's state with the latest one. tfjs on the wasm backend (cpu if wasm does
 * not start), in this thread only: the coordinator's event loop never runs a fit.
 *
 * Memory: one stage's history at a time (sent, used, dropped) plus the models; the coordinator
 * caps the V8 heap (resourceLimits) and every reply reports the thread's memory.
 */
import { parentPort } from 'node:worker_threads';
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { useNodeBackend } from '../../trainer/node-backend.js';
import { CheckpointHistory } from '../../shared/recovery/cpsr/history.js';
import { CpsrPredictor } from '../../shared/recovery/cpsr/predictor.js';
import type { FitWorkerReply, FitWorkerRequest, WorkerMemory } from './cpsr-fit-messages.js';

const port = parentPort;
if (!port) throw new Error('cpsr-fit-worker.ts runs as a worker thread');
const predictors = new Map<number, CpsrPredictor>();

// Lowest CPU priority for this thread only (Linux: a thread's id is a valid target of
// setpriority): where the cores are busy, training and relaying come first and the fits take
// what is left. Elsewhere the thread keeps the process's priority.
try {
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  if (Number.isSafeInteger(tid) && tid > 0 && tid !== process.pid) setPriority(tid, 19);
} catch {
  // not Linux, or not allowed: normal priority
}

const ready = useNodeBackend('wasm').catch(() => useNodeBackend('cpu'));

function memory(): WorkerMemory {
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers };
}

const historyOf = (req: { iterations: number[]; states: Float32Array[] }) =>
  CheckpointHistory.from(
    req.iterations.map((iteration, i) => ({ iteration, state: req.states[i] })),
    { capacity: Math.max(1, req.states.length), maxBytes: 200 * 1024 * 1024 },
  );

let chain: Promise<void> = Promise.resolve();
port.on('message', (req: FitWorkerRequest) => {
  chain = chain.then(() => handle(req));
});

async function handle(req: FitWorkerRequest): Promise<void> {
  let reply: FitWorkerReply;
  const transfer: ArrayBuffer[] = [];
  try {
    await ready;
    const history = historyOf(req);
    if (req.kind === 'fit') {
      predictors.get(req.stage)?.dispose();
      const p = new CpsrPredictor(req.config);
      predictors.set(req.stage, p);
      const outcome = p.fit(history);
      reply = { id: req.id, ok: true, kind: 'fit', outcome, memory: memory() };
    } else {
      const p = predictors.get(req.stage);
      const last = history.last;
      if (!last) throw new Error('no checkpoint to restore from');
      const base = { from: last.iteration, to: req.iteration, horizon: req.iteration - last.iteration };
      if (!p) {
        reply = { id: req.id, ok: true, kind: 'predict', prediction: { predicted: false, ...base, reason: 'no background fit of this stage yet' }, memory: memory() };
      } else {
        const out = p.predict(history, req.iteration);
        if (out.predicted) transfer.push(out.state.buffer as ArrayBuffer);
        reply = { id: req.id, ok: true, kind: 'predict', prediction: out.predicted ? out : { predicted: false, from: out.from, to: out.to, horizon: out.horizon, reason: out.reason }, memory: memory() };
      }
    }
  } catch (e) {
    reply = { id: req.id, ok: false, error: (e as Error).message };
  }
  port!.postMessage(reply, transfer);
}
