/**
 * Turns run traces into clocks, summaries and the output files: the per-slot CSV, one SVG plot per
 * rate (validation loss against modelled wall clock, one line per strategy) and the markdown table
 * of time-to-target and final loss with the speed-up of CheckFree(+) over checkpointing.
 */
import type { RecoveryStrategy } from '../shared/run-settings.js';
import { slotCost, type CostContext, type SlotCost } from './cost-model.js';
import type { IterationTiming } from './timeline.js';
import type { RunTrace, SlotRecord } from './run.js';
import { lineChart } from './svg.js';
import { takesCheckpoints } from './checkpointed.js';

export interface CostedSlot {
  record: SlotRecord;
  cost: SlotCost;
  /** Cumulative in-process (pure compute) seconds at the end of the slot. */
  wall: number;
  /** Cumulative modelled seconds at the end of the slot. */
  modelled: number;
  /** The slot redid progress already made before a rollback. */
  redo: boolean;
}

export interface RunSummary {
  strategy: RecoveryStrategy;
  rate: number;
  derived: boolean;
  checkpointEvery: number | null;
  /** Stage losses (a slot losing two stages counts two). */
  failures: number;
  /** Recoveries by method, e.g. { average: 2, reinit: 1 }. */
  methods: Record<string, number>;
  fallbacks: number;
  rollbacks: number;
  checkpoints: number;
  slots: number;
  iterations: number;
  stoppedAtCap: boolean;
  finalValLoss: number;
  minValLoss: number;
  /** Mean training loss of the last 5 slots. */
  finalTrainLoss: number;
  wallSeconds: number;
  modelledSeconds: number;
  breakdown: { iteration: number; redo: number; recovery: number; checkpoint: number; replicas: number };
  timeToTarget: { modelled: number; wall: number; iteration: number } | null;
  notes: string[];
}

export interface RunResult {
  trace: RunTrace;
  slots: CostedSlot[];
  summary: RunSummary;
}

/** Prices every slot of a trace; `timingFor` chooses the task times (the slot's own or a median). */
export function costRun(ctx: CostContext, trace: RunTrace, timingFor: (r: SlotRecord) => IterationTiming): CostedSlot[] {
  let wall = 0;
  let modelled = 0;
  let best = 0;
  return trace.slots.map((record) => {
    const cost = slotCost(ctx, record, timingFor(record));
    wall += record.measuredSeconds;
    modelled += cost.total;
    const redo = record.iteration <= best;
    best = Math.max(best, record.iteration);
    return { record, cost, wall, modelled, redo };
  });
}

/** Validation points (time, loss) of a costed run, starting with the initial loss at time 0. */
export function valPoints(trace: RunTrace, slots: CostedSlot[], clock: 'modelled' | 'wall' = 'modelled'): { t: number; loss: number; iteration: number }[] {
  const pts = [{ t: 0, loss: trace.initialValLoss, iteration: 0 }];
  for (const s of slots) if (s.record.valLoss !== null) pts.push({ t: s[clock], loss: s.record.valLoss, iteration: s.record.iteration });
  return pts;
}

export function summarize(trace: RunTrace, slots: CostedSlot[], target: number | null): RunSummary {
  const methods: Record<string, number> = {};
  let fallbacks = 0;
  for (const s of slots) {
    for (const r of s.record.recoveries) {
      methods[r.method] = (methods[r.method] ?? 0) + 1;
      if (r.fallback) fallbacks++;
    }
  }
  const vals = valPoints(trace, slots);
  const wallVals = valPoints(trace, slots, 'wall');
  const hit = target === null ? -1 : vals.findIndex((p) => p.loss <= target);
  const last = slots[slots.length - 1];
  const tail = slots.slice(-5).map((s) => s.record.trainLoss);
  const sum = (f: (s: CostedSlot) => number) => slots.reduce((a, s) => a + f(s), 0);
  return {
    strategy: trace.spec.strategy,
    rate: trace.spec.rate,
    derived: trace.derivedFrom !== null,
    checkpointEvery: takesCheckpoints(trace.spec.strategy) ? trace.spec.checkpointEvery : null,
    failures: sum((s) => s.record.failed.length),
    methods,
    fallbacks,
    rollbacks: sum((s) => (s.record.rollbackTo !== null ? 1 : 0)),
    checkpoints: sum((s) => (s.record.checkpointSaved ? 1 : 0)),
    slots: slots.length,
    iterations: last?.record.iteration ?? 0,
    stoppedAtCap: trace.stoppedAtCap,
    finalValLoss: vals[vals.length - 1]!.loss,
    minValLoss: Math.min(...vals.map((v) => v.loss)),
    finalTrainLoss: tail.length ? tail.reduce((a, b) => a + b, 0) / tail.length : NaN,
    wallSeconds: last?.wall ?? 0,
    modelledSeconds: last?.modelled ?? 0,
    breakdown: {
      iteration: sum((s) => (s.redo ? 0 : s.cost.iteration)),
      redo: sum((s) => (s.redo ? s.cost.iteration : 0)),
      recovery: sum((s) => s.cost.recovery),
      checkpoint: sum((s) => s.cost.checkpoint),
      replicas: sum((s) => s.cost.replicas),
    },
    timeToTarget: hit < 0 ? null : { modelled: vals[hit]!.t, wall: wallVals[hit]!.t, iteration: vals[hit]!.iteration },
    notes: trace.notes,
  };
}

// ---------------------------------------------------------------------------------------------
// CSV

export const CSV_COLUMNS = [
  'strategy',
  'rate',
  'iteration',
  'wall_clock_s',
  'modelled_wall_clock_s',
  'train_loss',
  'val_loss',
  'events',
  'slot',
  'modelled_slot_s',
  'derived',
] as const;

const csvCell = (v: string | number | null | undefined): string => {
  if (v === null || v === undefined || (typeof v === 'number' && !Number.isFinite(v))) return '';
  const s = typeof v === 'number' ? String(Number(v.toPrecision(8))) : v;
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/** One row per slot, plus a row for the initial state (iteration 0, time 0) of every run. */
export function toCsv(runs: RunResult[]): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const r of runs) {
    const { strategy, rate } = r.trace.spec;
    const derived = r.trace.derivedFrom !== null ? 'yes' : 'no';
    lines.push([strategy, rate, 0, 0, 0, null, r.trace.initialValLoss, 'start', null, null, derived].map(csvCell).join(','));
    for (const s of r.slots) {
      lines.push(
        [strategy, rate, s.record.iteration, s.wall, s.modelled, s.record.trainLoss, s.record.valLoss, s.record.events.join('; '), s.record.slot, s.cost.total, derived]
          .map(csvCell)
          .join(','),
      );
    }
  }
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// Plots

export const STRATEGY_COLORS: Record<RecoveryStrategy, string> = {
  checkfree: '#1f77b4',
  'checkfree+': '#2ca02c',
  checkpoint: '#d62728',
  cpsr: '#ff7f0e',
  'stage-restore': '#8c564b',
  redundant: '#9467bd',
  none: '#7f7f7f',
};

/** Validation loss against modelled wall clock, one line per strategy, for one rate. */
export function ratePlot(rate: number, runs: RunResult[], subtitle?: string): string {
  return lineChart({
    title: `Validation loss vs modelled wall clock, failure rate ${rate}%/h`,
    subtitle,
    xLabel: 'modelled wall clock (s)',
    yLabel: 'validation loss',
    yFitFromFraction: 0.1,
    series: runs.map((r) => ({
      name: r.trace.spec.strategy,
      color: STRATEGY_COLORS[r.trace.spec.strategy],
      points: valPoints(r.trace, r.slots).map((p) => [p.t, p.loss] as [number, number]),
      // A failure strikes at the start of its slot: mark the end of the previous one.
      marks: r.slots.flatMap((s, i) => (s.record.failed.length ? [i === 0 ? 0 : r.slots[i - 1]!.modelled] : [])),
    })),
  });
}

// ---------------------------------------------------------------------------------------------
// Markdown

const f = (x: number | null | undefined, d = 3) => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
const secs = (x: number | null | undefined) => (x === null || x === undefined ? '-' : x < 100 ? x.toFixed(1) : x.toFixed(0));

/** Speed-up of `fast` over `slow` in time to target: slow / fast, or a bound when one never got there. */
export function speedup(slow: RunSummary | undefined, fast: RunSummary | undefined): string {
  if (!slow || !fast) return '-';
  const a = slow.timeToTarget?.modelled;
  const b = fast.timeToTarget?.modelled;
  if (a !== undefined && b !== undefined) return b > 0 ? `${(a / b).toFixed(2)}x` : '-';
  if (a === undefined && b !== undefined) return b > 0 ? `> ${(slow.modelledSeconds / b).toFixed(2)}x (checkpoint never reached it)` : '-';
  if (a !== undefined && b === undefined) return `< ${(a / fast.modelledSeconds).toFixed(2)}x (never reached it)`;
  return 'neither reached it';
}

export function summaryTables(runs: RunResult[], target: number | null): string {
  const out: string[] = [];
  const rates = [...new Set(runs.map((r) => r.summary.rate))].sort((a, b) => a - b);
  for (const rate of rates) {
    const rs = runs.filter((r) => r.summary.rate === rate).map((r) => r.summary);
    out.push(`### ${rate}%/h`, '');
    out.push(
      '| strategy | stage losses | recoveries | slots (iterations) | final val loss | min val loss | final train loss | time to target (modelled s) | modelled total s | pure compute s | iteration s | redo s | recovery s | checkpoint s | replica s |',
    );
    out.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const s of rs) {
      const methods = Object.entries(s.methods).map(([k, v]) => `${k} ${v}`).join(', ') || '-';
      const name = `${s.strategy}${takesCheckpoints(s.strategy) ? ` (every ${s.checkpointEvery ?? 'never'})` : ''}${s.derived ? ' *' : ''}`;
      out.push(
        `| ${name} | ${s.failures} | ${methods}${s.fallbacks ? ` (${s.fallbacks} fallback)` : ''} | ${s.slots} (${s.iterations})${s.stoppedAtCap ? ' capped' : ''} | ${f(s.finalValLoss)} | ${f(s.minValLoss)} | ${f(s.finalTrainLoss)} | ${s.timeToTarget ? `${secs(s.timeToTarget.modelled)} (it ${s.timeToTarget.iteration})` : 'not reached'} | ${secs(s.modelledSeconds)} | ${secs(s.wallSeconds)} | ${secs(s.breakdown.iteration)} | ${secs(s.breakdown.redo)} | ${secs(s.breakdown.recovery)} | ${secs(s.breakdown.checkpoint)} | ${secs(s.breakdown.replicas)} |`,
      );
    }
    out.push('');
  }
  out.push('### Speed-up over checkpointing (time to target, modelled clock)', '');
  out.push(`Target validation loss: ${target === null ? '-' : target.toFixed(3)}.`, '');
  out.push('| rate %/h | checkfree vs checkpoint | checkfree+ vs checkpoint | redundant vs checkpoint | none vs checkpoint | stage-restore vs checkpoint | cpsr vs checkpoint |');
  out.push('|---|---|---|---|---|---|---|');
  for (const rate of rates) {
    const by = (s: RecoveryStrategy) => runs.find((r) => r.summary.rate === rate && r.summary.strategy === s)?.summary;
    const ck = by('checkpoint');
    out.push(`| ${rate} | ${speedup(ck, by('checkfree'))} | ${speedup(ck, by('checkfree+'))} | ${speedup(ck, by('redundant'))} | ${speedup(ck, by('none'))} | ${speedup(ck, by('stage-restore'))} | ${speedup(ck, by('cpsr'))} |`);
  }
  out.push('');
  return out.join('\n');
}
