/**
 * A uPlot chart as a React component: created once per series layout, fed new data with
 * setData, resized with its container, with vertical marks (recoveries) drawn on the canvas.
 * The wrapper exposes `data-points` and `data-marks` (marks actually drawn) for tests.
 */
import { useEffect, useMemo, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Mark {
  x: number;
  label: string;
}

export interface SeriesSpec {
  label: string;
  color: string;
  /** Points only (sparse series such as validation loss). */
  points?: boolean;
  dash?: number[];
  fill?: string;
  /** Value formatter for the legend. */
  fmt?: (v: number) => string;
}

interface Props {
  title: string;
  testId: string;
  /** [xs, ...ys], ys may hold nulls. */
  data: (number | null)[][];
  series: SeriesSpec[];
  /** x values are epoch seconds (time axis). */
  time?: boolean;
  xLabel?: string;
  yLabel?: string;
  marks?: Mark[];
  height?: number;
  empty?: string;
}

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

export function Chart({ title, testId, data, series, time = false, xLabel, yLabel, marks = [], height = 220, empty }: Props) {
  const wrap = useRef<HTMLDivElement>(null);
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const marksRef = useRef<Mark[]>(marks);
  marksRef.current = marks;
  const layout = useMemo(() => JSON.stringify({ series: series.map((s) => [s.label, s.color, s.points, s.dash]), time, xLabel, yLabel, height }), [series, time, xLabel, yLabel, height]);
  const points = data[0]?.length ?? 0;

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const muted = cssVar('--muted', '#5c6673');
    const grid = cssVar('--border', '#dde1e6');
    const danger = cssVar('--danger', '#c2410c');
    const axis = (label?: string): uPlot.Axis => ({
      stroke: muted,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid, width: 1 },
      label,
      labelSize: label ? 18 : 0,
      font: '11px system-ui, sans-serif',
      labelFont: '11px system-ui, sans-serif',
    });
    const marksPlugin: uPlot.Plugin = {
      hooks: {
        draw: [
          (u) => {
            const { ctx } = u;
            const min = u.scales.x!.min ?? 0;
            const max = u.scales.x!.max ?? 0;
            let drawn = 0;
            const dpr = window.devicePixelRatio || 1;
            ctx.save();
            ctx.strokeStyle = danger;
            ctx.fillStyle = danger;
            ctx.lineWidth = 1.5 * dpr;
            ctx.font = `${10 * dpr}px system-ui, sans-serif`;
            for (const m of marksRef.current) {
              if (m.x < min || m.x > max) continue;
              const x = Math.round(u.valToPos(m.x, 'x', true));
              const top = u.bbox.top;
              ctx.setLineDash([4 * dpr, 3 * dpr]);
              ctx.beginPath();
              ctx.moveTo(x, top);
              ctx.lineTo(x, top + u.bbox.height);
              ctx.stroke();
              ctx.setLineDash([]);
              ctx.beginPath();
              ctx.moveTo(x - 5 * dpr, top);
              ctx.lineTo(x + 5 * dpr, top);
              ctx.lineTo(x, top + 7 * dpr);
              ctx.closePath();
              ctx.fill();
              drawn++;
            }
            ctx.restore();
            if (wrap.current) wrap.current.dataset.marks = String(drawn);
          },
        ],
      },
    };
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      padding: [12, 8, 0, 0],
      cursor: { drag: { x: true, y: false } },
      legend: { show: true, live: true },
      scales: {
        x: {
          time,
          // Keep the latest recovery mark in view even before the next point arrives.
          range: (_u, dmin, dmax) => {
            let lo = dmin;
            let hi = dmax;
            for (const m of marksRef.current) if (m.x >= lo && m.x > hi) hi = m.x;
            if (lo == null || hi == null) return [0, 1];
            if (hi <= lo) return time ? [lo - 30, hi + 30] : [lo - 1, hi + 1];
            return [lo, hi];
          },
        },
      },
      axes: [
        // Iterations are whole numbers: no 1.2, 1.4, ... ticks.
        time
          ? {
              ...axis(xLabel),
              space: 70,
              // One line of clock time (uPlot's default adds a second, date line that crowds a phone).
              values: (_u, ticks) => {
                const span = ticks.length > 1 ? ticks[ticks.length - 1]! - ticks[0]! : 0;
                return ticks.map((t) =>
                  new Date(t * 1000).toLocaleTimeString([], span < 600 ? { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false } : { hour: '2-digit', minute: '2-digit', hour12: false }),
                );
              },
            }
          : { ...axis(xLabel), incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000], values: (_u, ticks) => ticks.map((t) => String(t)) },
        { ...axis(yLabel), size: 52 },
      ],
      series: [
        { label: time ? 'time' : (xLabel ?? 'x') },
        ...series.map<uPlot.Series>((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          dash: s.dash,
          fill: s.fill,
          spanGaps: true,
          points: s.points ? { show: true, size: 6, fill: s.color } : { show: false },
          value: (_u, v) => (v == null ? '—' : s.fmt ? s.fmt(v) : v.toFixed(3)),
        })),
      ],
      plugins: [marksPlugin],
    };
    const u = new uPlot(opts, data as uPlot.AlignedData, el);
    plot.current = u;
    const ro = new ResizeObserver(() => {
      const w = el.clientWidth;
      if (w > 0 && Math.abs(w - u.width) > 1) u.setSize({ width: w, height });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
    // Data updates go through setData below; the chart is rebuilt only when its layout changes.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [layout]);

  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData);
  }, [data]);

  useEffect(() => {
    const u = plot.current;
    if (!u) return;
    // Re-run the range function (marks may extend it) and redraw the marks.
    u.setData(u.data);
  }, [marks]);

  return (
    <figure className="chart" ref={wrap} data-testid={testId} data-points={points} data-marks="0">
      <figcaption>{title}</figcaption>
      <div ref={host} className="chart-host" />
      {points === 0 && <p className="chart-empty">{empty ?? 'No data yet.'}</p>}
      {marks.length > 0 && (
        <ul className="chart-marks" aria-label="recoveries">
          {marks.slice(-6).map((m, i) => (
            <li key={`${m.x}-${i}`}>▼ {m.label}</li>
          ))}
          {marks.length > 6 && <li>… {marks.length - 6} earlier</li>}
        </ul>
      )}
    </figure>
  );
}
