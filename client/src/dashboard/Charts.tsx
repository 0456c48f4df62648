/** Loss curves (vs iteration and vs wall-clock, recoveries marked), swarm throughput, per-stage step time. */
import { useMemo } from 'react';

import type { EventRow, IterationRecord } from '../../../shared/protocol/operator';
import { Chart, type Mark } from './Chart';
import { compact, num } from '../format';

const TRAIN = '#2563eb';
const VAL = '#d97706';
const TPS = '#059669';

/** Recovery starts (the "stage lost" events), as chart marks. */
export function recoveryMarks(events: EventRow[]): { byIteration: Mark[]; byTime: Mark[] } {
  const byIteration: Mark[] = [];
  const byTime: Mark[] = [];
  for (const e of events) {
    if (e.kind !== 'recovery' || !e.data || e.data.completed) continue;
    const it = Number(e.data.iteration);
    const label = `it ${Number.isFinite(it) ? it : '?'}: stage ${String(e.data.stage ?? '?')} lost → ${String(e.data.method ?? e.data.strategy ?? 'recovery')}`;
    if (Number.isFinite(it)) byIteration.push({ x: it, label });
    const t = Number(e.data.detectedAt ?? e.time);
    byTime.push({ x: t / 1000, label });
  }
  return { byIteration, byTime };
}

const LOSS_SERIES = [
  { label: 'train loss', color: TRAIN, fmt: (v: number) => v.toFixed(4) },
  { label: 'val loss', color: VAL, points: true, fmt: (v: number) => v.toFixed(4) },
];

export function LossVsIteration({ iterations, events, wide }: { iterations: IterationRecord[]; events: EventRow[]; wide?: boolean }) {
  const marks = useMemo(() => recoveryMarks(events).byIteration, [events]);
  const data = useMemo(() => [iterations.map((r) => r.iteration), iterations.map((r) => r.trainLoss), iterations.map((r) => r.valLoss)], [iterations]);
  return (
    <section className={`panel ${wide ? 'span-6' : 'span-8'}`}>
      <Chart
        title="Loss vs iteration"
        testId="loss-chart"
        data={data}
        series={LOSS_SERIES}
        xLabel="iteration"
        yLabel="cross-entropy"
        marks={marks}
        height={260}
        empty="Waiting for the first iteration…"
      />
    </section>
  );
}

export function LossVsTime({ iterations, events }: { iterations: IterationRecord[]; events: EventRow[] }) {
  const marks = useMemo(() => recoveryMarks(events).byTime, [events]);
  const data = useMemo(() => [iterations.map((r) => r.time / 1000), iterations.map((r) => r.trainLoss), iterations.map((r) => r.valLoss)], [iterations]);
  return (
    <section className="panel span-6">
      <Chart
        title="Loss vs wall-clock"
        testId="loss-time-chart"
        data={data}
        series={LOSS_SERIES}
        time
        yLabel="cross-entropy"
        marks={marks}
        empty="Waiting for the first iteration…"
      />
    </section>
  );
}

export function ThroughputChart({ iterations }: { iterations: IterationRecord[] }) {
  const data = useMemo(() => [iterations.map((r) => r.iteration), iterations.map((r) => (r.seconds > 0 ? r.tokens / r.seconds : null))], [iterations]);
  const series = useMemo(() => [{ label: 'tokens/s', color: TPS, fill: 'rgba(5,150,105,0.12)', fmt: (v: number) => compact(v) }], []);
  const last = iterations.slice(-10);
  const avg = last.length ? last.reduce((a, r) => a + r.tokens, 0) / Math.max(1e-9, last.reduce((a, r) => a + r.seconds, 0)) : null;
  return (
    <section className="panel span-6">
      <Chart title={`Swarm throughput · ${compact(avg)} tokens/s (last ${last.length})`} testId="tps-chart" data={data} series={series} xLabel="iteration" yLabel="tokens/s" height={180} />
    </section>
  );
}

/** Per-stage compute vs waiting over the last iterations: the longest compute bar is the bottleneck. */
export function StageTimes({ iterations, stages }: { iterations: IterationRecord[]; stages: number }) {
  const recent = useMemo(() => iterations.slice(-10), [iterations]);
  const rows = useMemo(() => {
    const out = Array.from({ length: stages }, (_, s) => ({ stage: s, compute: 0, n: 0, total: 0 }));
    for (const r of recent) {
      for (const st of r.stages) {
        const o = out[st.stage];
        if (!o || st.computeMs == null) continue;
        o.compute += st.computeMs;
        o.total += r.seconds * 1000;
        o.n++;
      }
    }
    return out.map((o) => ({ stage: o.stage, compute: o.n ? o.compute / o.n : null, total: o.n ? o.total / o.n : null }));
  }, [recent, stages]);
  const maxTotal = Math.max(1, ...rows.map((r) => r.total ?? 0));
  const bottleneck = rows.reduce<number | null>((b, r) => (r.compute != null && (b == null || r.compute > (rows[b]!.compute ?? 0)) ? r.stage : b), null);
  return (
    <section className="panel span-6" aria-labelledby="times-title">
      <header className="panel-head">
        <h2 id="times-title">Step time per stage</h2>
        <span className="muted small">mean of the last {recent.length} iteration{recent.length === 1 ? '' : 's'}</span>
      </header>
      {recent.length === 0 ? (
        <p className="muted">No completed iterations yet.</p>
      ) : (
        <ul className="bars" data-testid="stage-times">
          {rows.map((r) => {
            const compute = r.compute ?? 0;
            const waiting = Math.max(0, (r.total ?? 0) - compute);
            return (
              <li key={r.stage} className={r.stage === bottleneck ? 'bottleneck' : undefined}>
                <span className="bar-label">
                  Stage {r.stage}
                  {r.stage === bottleneck && <span className="badge badge-bottleneck">bottleneck</span>}
                </span>
                <span className="bar" title={`compute ${num(compute, 0)} ms · waiting ${num(waiting, 0)} ms`}>
                  <span className="bar-compute" style={{ width: `${(100 * compute) / maxTotal}%` }} />
                  <span className="bar-wait" style={{ width: `${(100 * waiting) / maxTotal}%` }} />
                </span>
                <span className="bar-value">
                  {num(compute, 0)} / {num(r.total, 0)} ms
                </span>
              </li>
            );
          })}
        </ul>
      )}
      <p className="legend small">
        <span className="swatch swatch-compute" /> compute (forward, backward, optimizer step on the tab) <span className="swatch swatch-wait" /> waiting
        (pipeline bubbles, relay, other stages)
      </p>
    </section>
  );
}
