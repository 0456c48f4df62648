/**
 * CPSR's predictor trained in the background (issue 25, "where the predictor trains"): a worker
 * thread (cpsr-fit-worker.ts, tfjs wasm) fits every stage's predictor after each checkpoint,
 * one stage at a time, so that a failure only predicts with the latest fit. The coordinator's
 * event loop reads the histories from disk and posts them; the fitting runs on another core.
 *
 * Bounded: one job in the worker at a time; a stage's queued fit is replaced by a newer one; the
 * worker's V8 heap is capped (resourceLimits) and each reply reports its memory (the peak is kept).
 * Failure-safe: a job past its timeout terminates the worker; a crash, an exit or a malformed reply
 * rejects what was pending with the reason. The next request starts a fresh worker (whose
 * models are gone: the caller then restores plainly and says why). Nothing here throws into the
 * coordinator's event loop.
 */
import { Worker } from 'node:worker_threads';
import type { CheckpointHistory } from '../../shared/recovery/cpsr/history.js';
import type { FitOutcome, PredictorConfig } from '../../shared/recovery/cpsr/predictor.js';
import { checkReply, type FitRequest, type FitWorkerReply, type PredictRequest, type WorkerMemory, type WorkerPrediction } from './cpsr-fit-messages.js';

export interface FitterOptions {
  predictor: PredictorConfig;
  /** The worker's entry (default: cpsr-fit-worker.ts next to this file); tests pass a broken one. */
  entry?: URL;
  /** A fit (one stage) and a prediction may take this long before the worker is terminated. */
  fitTimeoutMs: number;
  predictTimeoutMs: number;
  /**
   * A failure does not wait behind a running fit longer than this: the worker answers one message
   * at a time, so a prediction asked mid-fit queues behind it (seconds to tens of seconds on a
   * loaded machine); past this the lost stage gets the plain restore at once, with the reason.
   */
  predictBusyWaitMs: number;
  /** Cap on the worker's V8 old generation (MB). */
  maxHeapMb: number;
  /**
   * Most of the wall time the worker may spend fitting (0..1]: after a fit of t seconds it rests
   * t (1/duty - 1) seconds. Where no core is free for it (tabs on the same machine, SMT siblings),
   * this bounds what fitting takes from training; fewer fits mean older ones at a failure.
   */
  duty: number;
}

export const DEFAULT_FITTER: Omit<FitterOptions, 'predictor'> = { fitTimeoutMs: 120_000, predictTimeoutMs: 30_000, predictBusyWaitMs: 2_000, maxHeapMb: 192, duty: 1 };

/** The last background fit of a stage. */
export interface StageFit {
  stage: number;
  /** Checkpoints the run had taken when the fit was asked for (the planner's x). */
  runCheckpoints: number;
  outcome: FitOutcome;
  /** Epoch ms when it finished. */
  at: number;
}

interface Pending {
  resolve: (r: FitWorkerReply) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  kind: 'fit' | 'predict';
  length: number;
}

export class CpsrFitter {
  private worker: Worker | null = null;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  /** Stages waiting for a fit, with the run's checkpoint count when asked (newest request wins). */
  private queued = new Map<number, number>();
  private draining: Promise<void> | null = null;
  /** The stage whose fit the worker is running now (null: idle). */
  private fitting: number | null = null;
  private closed = false;
  readonly fits = new Map<number, StageFit>();
  /** Peak of the worker's reported memory (heap + external + array buffers), bytes. */
  peakBytes = 0;
  /** Seconds the worker spent fitting, all stages together. */
  fitSeconds = 0;
  /** Seconds the coordinator's event loop spent reading histories for fits (the part not in the worker). */
  readSeconds = 0;
  /** Why the worker last failed (crash, timeout), or null. */
  lastFailure: string | null = null;

  constructor(
    private opts: FitterOptions,
    /** The stage's history now (read from the kept checkpoints when the job starts). */
    private historyOf: (stage: number) => CheckpointHistory,
    /** Called after each finished fit (the planner and the dashboard listen). */
    private onFit: (f: StageFit) => void = () => {},
    private onFailure: (reason: string) => void = () => {},
  ) {}

  /** Asks for a fit of each stage after a checkpoint; returns when the queue is empty. */
  fitInBackground(stages: readonly number[], runCheckpoints: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    for (const s of stages) this.queued.set(s, runCheckpoints);
    this.draining ??= this.drain().finally(() => (this.draining = null));
    return this.draining;
  }

  /** Resolves when no fit is queued or running. */
  idle(): Promise<void> {
    return this.draining ?? Promise.resolve();
  }

  private async drain(): Promise<void> {
    while (this.queued.size && !this.closed) {
      const [stage, runCheckpoints] = this.queued.entries().next().value as [number, number];
      this.queued.delete(stage);
      let history: CheckpointHistory;
      const t0 = performance.now();
      try {
        history = this.historyOf(stage);
        this.readSeconds += (performance.now() - t0) / 1000;
      } catch (e) {
        this.fail(`stage ${stage}'s history could not be read (${(e as Error).message})`);
        continue;
      }
      if (history.size === 0) continue;
      try {
        this.fitting = stage;
        const r = await this.send({ kind: 'fit', stage, config: this.opts.predictor, ...this.payload(history) }, this.opts.fitTimeoutMs, history.last!.state.length).finally(() => {
          this.fitting = null;
        });
        if (!r.ok) throw new Error(r.error);
        if (r.kind !== 'fit') continue;
        this.fitSeconds += r.outcome.seconds;
        const f: StageFit = { stage, runCheckpoints, outcome: r.outcome, at: Date.now() };
        this.fits.set(stage, f);
        this.onFit(f);
        const duty = Math.min(1, Math.max(1e-3, this.opts.duty));
        if (duty < 1 && r.outcome.seconds > 0) await this.rest(r.outcome.seconds * (1 / duty - 1) * 1000);
      } catch (e) {
        this.fits.delete(stage);
        this.fail(`the background fit of stage ${stage} failed (${(e as Error).message})`);
      }
    }
  }

  /**
   * The stage's state at `iteration` from its latest background fit: a prediction, or a reason
   * not to (no fit, fit refused, worker crashed or timed out). Never throws.
   */
  async predict(stage: number, history: CheckpointHistory, iteration: number): Promise<WorkerPrediction> {
    const last = history.last;
    const base = { from: last?.iteration ?? iteration, to: iteration, horizon: iteration - (last?.iteration ?? iteration) };
    if (!last) return { predicted: false, ...base, reason: 'no checkpoint of the stage' };
    if (this.closed) return { predicted: false, ...base, reason: 'the fitting worker is closed' };
    try {
      const busyWith = this.fitting;
      const asked = this.send({ kind: 'predict', stage, iteration, ...this.payload(history) }, this.opts.predictTimeoutMs, last.state.length);
      // Behind a running fit: wait at most predictBusyWaitMs (the late answer is dropped).
      if (busyWith !== null) asked.catch(() => {}); // answered or failed after the race: nobody waits for it
      const r = busyWith === null ? await asked : await Promise.race([asked, this.busyTimeout()]);
      if (r === 'busy') return { predicted: false, ...base, reason: `the fitting worker was busy fitting stage ${busyWith} for more than ${(this.opts.predictBusyWaitMs / 1000).toFixed(1)} s` };
      if (!r.ok) return { predicted: false, ...base, reason: `the fitting worker failed (${r.error})` };
      if (r.kind !== 'predict') return { predicted: false, ...base, reason: 'the fitting worker answered something else' };
      return r.prediction;
    } catch (e) {
      return { predicted: false, ...base, reason: `the fitting worker failed (${(e as Error).message})` };
    }
  }

  private busyTimeout(): Promise<'busy'> {
    return new Promise((resolve) => setTimeout(() => resolve('busy'), this.opts.predictBusyWaitMs).unref());
  }

  /** Waits `ms` (cut short by close()), never keeping the process alive. */
  private rest(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      t.unref();
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  private wake: () => void = () => {};

  private payload(history: CheckpointHistory): { iterations: number[]; states: Float32Array[] } {
    return { iterations: [...history.iterations], states: history.states.map((s) => s.slice()) };
  }

  private spawn(): Worker {
    const entry = this.opts.entry ?? new URL('./cpsr-fit-worker.ts', import.meta.url);
    const ts = entry.pathname.endsWith('.ts');
    const w = ts
      ? new Worker(new URL('./cpsr-fit-worker-boot.mjs', import.meta.url), { workerData: { entry: entry.href }, resourceLimits: { maxOldGenerationSizeMb: this.opts.maxHeapMb } })
      : new Worker(entry, { resourceLimits: { maxOldGenerationSizeMb: this.opts.maxHeapMb } });
    w.unref(); // never keeps the process alive
    w.on('message', (raw: unknown) => {
      const id = (raw as { id?: unknown } | null)?.id;
      const p = typeof id === 'number' ? this.pending.get(id) : undefined;
      if (!p) return;
      this.pending.delete(id as number);
      clearTimeout(p.timer);
      try {
        const r = checkReply(raw, { id: id as number, kind: p.kind, length: p.length });
        if (r.ok) this.peakBytes = Math.max(this.peakBytes, memBytes(r.memory));
        p.resolve(r);
      } catch (e) {
        p.reject(e as Error);
      }
    });
    w.on('error', (e: Error) => this.lose(w, `crashed: ${e.message}`));
    w.on('exit', (code) => this.lose(w, `exited with code ${code}`));
    return w;
  }

  private send(req: Omit<FitRequest, 'id'> | Omit<PredictRequest, 'id'>, timeoutMs: number, length: number): Promise<FitWorkerReply> {
    const w = (this.worker ??= this.spawn());
    const id = this.nextId++;
    return new Promise<FitWorkerReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no answer within ${(timeoutMs / 1000).toFixed(1)} s`));
        this.lose(w, `timed out after ${(timeoutMs / 1000).toFixed(1)} s`);
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, kind: req.kind, length });
      const states = req.states;
      try {
        w.postMessage({ ...req, id }, states.map((s) => s.buffer as ArrayBuffer));
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(e as Error);
      }
    });
  }

  /** The worker is gone (or must go): everything pending fails with the reason; the next request starts a new one. */
  private lose(w: Worker, why: string): void {
    if (this.worker !== w) return;
    this.worker = null;
    void w.terminate().catch(() => {});
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error(`the worker ${why}`));
      this.pending.delete(id);
    }
    this.fits.clear(); // its models are gone
    if (!this.closed) this.fail(`the fitting worker ${why}`);
  }

  private fail(reason: string): void {
    this.lastFailure = reason;
    this.onFailure(reason);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.queued.clear();
    this.wake();
    const w = this.worker;
    if (w) {
      this.lose(w, 'was closed');
      await w.terminate().catch(() => {});
    }
  }
}

const memBytes = (m: WorkerMemory) => m.heapUsed + m.external + m.arrayBuffers;
