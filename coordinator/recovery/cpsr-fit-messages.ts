/**
 * What the coordinator and its CPSR fitting worker (cpsr-fit-worker.ts) say to each other. The
 * worker is ours, but its replies are still checked (shape, finite numbers, the state's length)
 * before the coordinator uses them: a broken worker must give a reason, never a bad stage.
 */
import type { FitOutcome, PredictorConfig } from '../../shared/recovery/cpsr/predictor.js';

export interface FitRequest {
  id: number;
  kind: 'fit';
  stage: number;
  iterations: number[];
  states: Float32Array[];
  config: PredictorConfig;
}

export interface PredictRequest {
  id: number;
  kind: 'predict';
  stage: number;
  iterations: number[];
  states: Float32Array[];
  iteration: number;
}

export type FitWorkerRequest = FitRequest | PredictRequest;

/** The worker's own memory after the job (bytes): its V8 heap, external and array buffers (tfjs wasm's heap included). */
export interface WorkerMemory {
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export type WorkerPrediction =
  | { predicted: true; state: Float32Array; from: number; to: number; horizon: number; valRatio: number }
  | { predicted: false; from: number; to: number; horizon: number; reason: string };

export type FitWorkerReply =
  | { id: number; ok: true; kind: 'fit'; outcome: FitOutcome; memory: WorkerMemory }
  | { id: number; ok: true; kind: 'predict'; prediction: WorkerPrediction; memory: WorkerMemory }
  | { id: number; ok: false; error: string };

const num = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

/** Checks a reply from the worker; throws with the reason when it is malformed. */
export function checkReply(raw: unknown, expect: { id: number; kind: 'fit' | 'predict'; length: number }): FitWorkerReply {
  const r = raw as Record<string, unknown> | null;
  if (typeof r !== 'object' || r === null || r.id !== expect.id) throw new Error('the worker sent a reply for another request');
  if (r.ok === false) return { id: expect.id, ok: false, error: typeof r.error === 'string' ? r.error.slice(0, 500) : 'unknown error' };
  if (r.ok !== true || r.kind !== expect.kind) throw new Error(`the worker sent a malformed ${expect.kind} reply`);
  const m = r.memory as Record<string, unknown> | undefined;
  if (!m || !num(m.heapUsed) || !num(m.external) || !num(m.arrayBuffers)) throw new Error('the worker reply has no memory figures');
  if (expect.kind === 'fit') {
    const o = r.outcome as Record<string, unknown> | undefined;
    if (!o || typeof o.usable !== 'boolean' || !num(o.seconds) || !num(o.checkpoints)) throw new Error('the worker sent a malformed fit outcome');
    if (o.valMse !== null && !num(o.valMse)) throw new Error('the fit outcome has a non-finite error');
    return r as unknown as FitWorkerReply;
  }
  const p = r.prediction as Record<string, unknown> | undefined;
  if (!p || typeof p.predicted !== 'boolean' || !num(p.from) || !num(p.to) || !num(p.horizon)) throw new Error('the worker sent a malformed prediction');
  if (p.predicted) {
    const s = p.state;
    if (!(s instanceof Float32Array) || s.length !== expect.length) throw new Error(`the predicted state has ${s instanceof Float32Array ? s.length : 'no'} values, the stage holds ${expect.length}`);
    for (let i = 0; i < s.length; i++) if (!Number.isFinite(s[i]!)) throw new Error(`the predicted state is not finite at value ${i}`);
    if (!num(p.valRatio)) throw new Error('the prediction has no validation error');
  } else if (typeof p.reason !== 'string') throw new Error('the worker declined to predict without a reason');
  return r as unknown as FitWorkerReply;
}
