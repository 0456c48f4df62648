/**
 * The background fitter: the worker thread fits a stage's predictor on a known trajectory and
 * predicts it closer to the truth than the plain restore, giving exactly what the same fit in
 * this thread gives; a worker that crashes, hangs, or answers garbage gives a reason, never a
 * throw, and the next request starts a fresh worker.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { mulberry32 } from '../../shared/model/rng.js';
import { CheckpointHistory } from '../../shared/recovery/cpsr/history.js';
import { DEFAULT_PREDICTOR } from '../../shared/recovery/cpsr/predictor.js';
import { CpsrFitter, DEFAULT_FITTER, type StageFit } from './cpsr-fitter.js';

const N = 3000;
const ITERS = [0, 10, 20, 30, 45, 55, 65, 80, 90, 100];

function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(Math.max(rand(), 1e-12))) * Math.cos(2 * Math.PI * rand());
}

/** The predictor test's trajectory: decelerating drift per parameter plus noise. */
function trajectory() {
  const rand = mulberry32(1);
  const a = Float64Array.from({ length: N }, () => gaussian(rand));
  const b = Float64Array.from({ length: N }, (_, p) => gaussian(rand) * 0.01 * (1 + Math.floor(p / 500)));
  const truth = (p: number, t: number) => a[p]! + b[p]! * 60 * (1 - Math.exp(-t / 60));
  const h = new CheckpointHistory({ capacity: 16, maxBytes: 1 << 24 });
  for (const t of ITERS) h.add(t, Float32Array.from({ length: N }, (_, p) => truth(p, t) + 0.5 * Math.abs(b[p]!) * gaussian(rand)));
  return { h, truth };
}

const fitters: CpsrFitter[] = [];
afterEach(async () => {
  for (const f of fitters.splice(0)) await f.close();
});

function fitter(h: CheckpointHistory, entry?: URL, timeouts = {}): { f: CpsrFitter; fits: StageFit[]; failures: string[] } {
  const fits: StageFit[] = [];
  const failures: string[] = [];
  const f = new CpsrFitter({ ...DEFAULT_FITTER, ...timeouts, predictor: DEFAULT_PREDICTOR, ...(entry ? { entry } : {}) }, () => h, (x) => fits.push(x), (r) => failures.push(r));
  fitters.push(f);
  return { f, fits, failures };
}

function brokenWorker(body: string): URL {
  const file = join(mkdtempSync(join(tmpdir(), 'cpsr-worker-')), 'w.mjs');
  writeFileSync(file, `import { parentPort } from 'node:worker_threads';\n${body}\n`);
  return pathToFileURL(file);
}

describe('CpsrFitter', () => {
  it('fits in the worker thread and predicts closer to the truth than the last checkpoint', async () => {
    const { h, truth } = trajectory();
    const { f, fits, failures } = fitter(h);
    await f.fitInBackground([1], 10);
    expect(failures).toEqual([]);
    expect(fits).toHaveLength(1);
    expect(fits[0]!.outcome.usable, JSON.stringify(fits[0]!.outcome)).toBe(true);
    expect(fits[0]!.outcome.valMse).toBeGreaterThan(0);
    expect(f.peakBytes).toBeGreaterThan(0);
    expect(f.peakBytes).toBeLessThan(200 * 1024 * 1024);
    const p = await f.predict(1, h, 110);
    expect(p.predicted, JSON.stringify({ ...p, state: undefined })).toBe(true);
    if (!p.predicted) return;
    const last = h.last!.state;
    let ePred = 0;
    let eLast = 0;
    for (let q = 0; q < N; q++) {
      ePred += (p.state[q]! - truth(q, 110)) ** 2;
      eLast += (last[q]! - truth(q, 110)) ** 2;
    }
    expect(ePred).toBeLessThan(eLast);
    // A stage never fitted: no prediction, with the reason.
    const other = await f.predict(2, h, 110);
    expect(other).toMatchObject({ predicted: false, reason: 'no background fit of this stage yet' });
  }, 120_000);

  it('a worker that crashes gives the reason and a fresh worker next time', async () => {
    const { h } = trajectory();
    const { f, failures } = fitter(h, brokenWorker(`parentPort.on('message', () => { throw new Error('boom'); });`));
    await f.fitInBackground([0], 6);
    expect(f.fits.size).toBe(0);
    expect(failures.join(' ')).toMatch(/boom/);
    const p = await f.predict(0, h, 105);
    expect(p.predicted).toBe(false);
    if (!p.predicted) expect(p.reason).toMatch(/fitting worker failed .*boom/);
  }, 30_000);

  it('a worker that never answers is terminated at the timeout', async () => {
    const { h } = trajectory();
    const { f, failures } = fitter(h, brokenWorker(`parentPort.on('message', () => {});`), { fitTimeoutMs: 300, predictTimeoutMs: 300 });
    await f.fitInBackground([0], 6);
    expect(failures.join(' ')).toMatch(/timed out/);
    const t0 = Date.now();
    const p = await f.predict(0, h, 105);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(p.predicted).toBe(false);
    if (!p.predicted) expect(p.reason).toMatch(/no answer within 0.3 s/);
  }, 30_000);

  it('a failure does not wait behind a running fit: the plain restore after predictBusyWaitMs, with the reason', async () => {
    const { h } = trajectory();
    // A worker that spends 4 s on a fit (blocking, as a real fit does) and answers predictions at once.
    const { f, failures } = fitter(
      h,
      brokenWorker(`parentPort.on('message', (r) => { if (r.kind === 'fit') { const t = Date.now(); while (Date.now() - t < 4000); parentPort.postMessage({ id: r.id, ok: false, error: 'slow fit done' }); } else parentPort.postMessage({ id: r.id, ok: false, error: 'idle answer' }); });`),
      { predictBusyWaitMs: 300 },
    );
    const fitting = f.fitInBackground([0], 6);
    await new Promise((r) => setTimeout(r, 200)); // the fit is running in the worker
    const t0 = Date.now();
    const p = await f.predict(0, h, 105);
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(p.predicted).toBe(false);
    if (!p.predicted) expect(p.reason).toMatch(/busy fitting stage 0 for more than 0.3 s/);
    await fitting;
    // Idle again: a prediction goes straight to the worker (whose answer here is a failure).
    const q = await f.predict(0, h, 105);
    if (!q.predicted) expect(q.reason).toMatch(/idle answer/);
    expect(failures.join(' ')).toMatch(/slow fit done/);
  }, 30_000);

  it('a malformed prediction (wrong length, NaN) is refused with the reason', async () => {
    const { h } = trajectory();
    const { f } = fitter(
      h,
      brokenWorker(`parentPort.on('message', (r) => parentPort.postMessage({ id: r.id, ok: true, kind: 'predict', memory: { heapUsed: 1, external: 1, arrayBuffers: 1 }, prediction: { predicted: true, from: 100, to: 105, horizon: 5, valRatio: 0.5, state: new Float32Array(${N}).fill(NaN) } }));`),
    );
    const p = await f.predict(0, h, 105);
    expect(p.predicted).toBe(false);
    if (!p.predicted) expect(p.reason).toMatch(/not finite at value 0/);
  }, 30_000);
});
