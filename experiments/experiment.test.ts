/**
 * The churn experiment end to end on a tiny configuration: the output files and their columns,
 * and the reuse shortcut (runs derived from the failure-free run must equal executed ones).
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useNodeBackend } from '../trainer/node-backend.js';
import { readTraceBundle, repriceExperiment, runExperiment, type ExperimentOptions } from './experiment.js';
import { tinyExperimentOptions } from '../testing/tiny-experiment.js';
import { CSV_COLUMNS } from './report.js';

const base = tinyExperimentOptions;

beforeAll(async () => {
  await useNodeBackend('wasm');
});

describe('churn experiment', () => {
  it('a tiny experiment writes the CSV, one SVG per rate and the summary table', async () => {
    const out = mkdtempSync(join(tmpdir(), 'experiment-test-'));
    try {
      const t0 = Date.now();
      const r = await runExperiment(base({ out }));
      expect(Date.now() - t0).toBeLessThan(60_000);
      expect(r.files.map((f) => f.slice(out.length + 1)).sort()).toEqual(['experiment.json', 'loss-vs-time-10.svg', 'results.csv', 'summary.md', 'traces.json']);

      const csv = readFileSync(join(out, 'results.csv'), 'utf8').trim().split('\n');
      expect(csv[0]!.split(',')).toEqual([...CSV_COLUMNS]);
      expect(csv[0]!.startsWith('strategy,rate,iteration,wall_clock_s,modelled_wall_clock_s,train_loss,val_loss,events')).toBe(true);
      const rows = csv.slice(1);
      for (const strategy of ['checkfree', 'checkpoint']) {
        const mine = rows.filter((l) => l.startsWith(`${strategy},10,`));
        const run = r.runs.find((x) => x.summary.strategy === strategy)!;
        expect(mine.length).toBe(run.slots.length + 1); // + the initial state
        expect(run.summary.iterations).toBe(6);
      }
      // The failure seed gives failures at slots 1, 2, 5, 7: recoveries and rollbacks show up.
      const cf = r.runs.find((x) => x.summary.strategy === 'checkfree')!.summary;
      const ck = r.runs.find((x) => x.summary.strategy === 'checkpoint')!.summary;
      expect(cf.failures).toBeGreaterThan(0);
      expect(ck.rollbacks).toBeGreaterThan(0);
      expect(ck.slots).toBeGreaterThan(6);
      expect(ck.breakdown.redo).toBeGreaterThan(0);
      expect(csv.some((l) => l.includes('rollback to'))).toBe(true);
      // Modelled clock is non-decreasing and counts the replacement wait for each failure slot.
      for (const run of r.runs) {
        const m = run.slots.map((s) => s.modelled);
        expect(m.every((v, i) => i === 0 || v >= m[i - 1]!)).toBe(true);
        const failSlots = run.slots.filter((s) => s.record.failed.length).length;
        expect(run.summary.breakdown.recovery).toBeGreaterThanOrEqual(10 * failSlots);
      }

      const svg = readFileSync(join(out, 'loss-vs-time-10.svg'), 'utf8');
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg.trim().endsWith('</svg>')).toBe(true);
      expect(svg.match(/<polyline class="series"/g)?.length).toBe(2);
      expect(svg).toContain('data-series="checkfree"');
      expect(svg).toContain('data-series="checkpoint"');
      expect(svg.match(/class="tick-label x"/g)!.length).toBeGreaterThanOrEqual(3);
      expect(svg.match(/class="tick-label y"/g)!.length).toBeGreaterThanOrEqual(3);
      expect(svg).toContain('modelled wall clock (s)');
      expect(svg).toContain('validation loss');
      expect(svg.match(/class="legend"/g)?.length).toBe(2);

      const md = readFileSync(join(out, 'summary.md'), 'utf8');
      expect(md).toContain('| strategy | stage losses |');
      expect(md).toContain('checkfree vs checkpoint');
      expect(md).toMatch(/\| 10 \| [^|]+\|/);

      // Repricing the saved traces trains nothing and changes only the clock (and the checkpoint runs, re-derived).
      const again = repriceExperiment(readTraceBundle(out), { replacementWaitSeconds: 0, checkpointEvery: 3, out: null });
      const cf0 = r.runs.find((x) => x.summary.strategy === 'checkfree')!;
      const cf1 = again.runs.find((x) => x.summary.strategy === 'checkfree')!;
      expect(cf1.slots.map((s) => s.record.trainLoss)).toEqual(cf0.slots.map((s) => s.record.trainLoss));
      const failSlots = cf0.slots.filter((s) => s.record.failed.length).length;
      expect(cf1.summary.modelledSeconds).toBeCloseTo(cf0.summary.modelledSeconds - 10 * failSlots, 6);
      const ck1 = again.runs.find((x) => x.summary.strategy === 'checkpoint')!;
      expect(ck1.trace.spec.checkpointEvery).toBe(3);
      expect(ck1.summary.derived).toBe(true);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('runs derived from the failure-free run equal executed ones (checkpoint rollbacks, redundant restores, no failures)', async () => {
    const over = { strategies: ['checkpoint', 'redundant', 'checkfree+'] as ExperimentOptions['strategies'], rates: [0, 10] };
    const reused = await runExperiment(base({ ...over, reuse: true }));
    const executed = await runExperiment(base({ ...over, reuse: false }));
    const key = (x: { summary: { strategy: string; rate: number } }) => `${x.summary.strategy}@${x.summary.rate}`;
    expect(reused.runs.map(key)).toEqual(executed.runs.map(key));
    const derived = reused.runs.filter((x) => x.summary.derived).map(key).sort();
    // Everything but checkfree+ at 10%/h (it has failures that change the model) is derived.
    expect(derived).toEqual(['checkfree+@0', 'checkpoint@0', 'checkpoint@10', 'redundant@0', 'redundant@10']);
    expect(executed.runs.every((x) => !x.summary.derived)).toBe(true);
    for (let i = 0; i < reused.runs.length; i++) {
      const a = reused.runs[i]!;
      const b = executed.runs[i]!;
      const view = (x: typeof a) =>
        x.slots.map((s) => ({ slot: s.record.slot, it: s.record.iteration, train: s.record.trainLoss, val: s.record.valLoss, events: s.record.events, failed: s.record.failed }));
      expect(view(a), key(a)).toEqual(view(b));
      expect(a.trace.initialValLoss).toBe(b.trace.initialValLoss);
    }
    const ck = reused.runs.find((x) => key(x) === 'checkpoint@10')!;
    expect(ck.summary.rollbacks).toBeGreaterThan(0);
    const red = reused.runs.find((x) => key(x) === 'redundant@10')!;
    expect(red.summary.methods.redundant).toBeGreaterThan(0);
  });
});
