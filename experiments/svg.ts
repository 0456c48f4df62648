/**
 * A small hand-written SVG line chart (no plotting dependency): axes with "nice" ticks, grid,
 * one polyline per series with point markers, optional event ticks under the x axis, a legend.
 */

export interface Series {
  name: string;
  color: string;
  points: [number, number][];
  /** x positions of events (e.g. failures), drawn as ticks under the axis in the series colour. */
  marks?: number[];
  /** false: points only, no connecting line (a strip / scatter plot). Default true. */
  line?: boolean;
}

export interface ChartOptions {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  width?: number;
  height?: number;
  /**
   * Ignore points with x below this fraction of the x range when choosing the top of the y axis
   * (the first points of a loss curve are far above the rest); lines are clipped to the plot.
   */
  yFitFromFraction?: number;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Tick values covering [lo, hi] with about `n` steps of 1, 2 or 5 x 10^k. */
export function niceTicks(lo: number, hi: number, n = 6): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi <= lo) hi = lo + 1;
  const raw = (hi - lo) / Math.max(1, n);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toFixed(12)));
  return out;
}

function label(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1000) return v.toFixed(0);
  if (a >= 10) return Number(v.toFixed(1)).toString();
  return Number(v.toFixed(3)).toString();
}

export function lineChart(o: ChartOptions): string {
  const W = o.width ?? 800;
  const H = o.height ?? 480;
  const markRows = o.series.some((s) => s.marks?.length) ? o.series.length : 0;
  const m = { left: 70, right: 180, top: o.subtitle ? 60 : 44, bottom: 52 + 4 * markRows };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const all = o.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const xMax0 = all.length ? Math.max(...all.map((p) => p[0])) : 1;
  const xMin0 = all.length ? Math.min(0, ...all.map((p) => p[0])) : 0;
  const xTicks = niceTicks(xMin0, xMax0 > xMin0 ? xMax0 : xMin0 + 1);
  const xMin = Math.min(xMin0, xTicks[0] ?? xMin0);
  const xMax = Math.max(xMax0, xTicks[xTicks.length - 1] ?? xMax0);
  const fitFrom = xMin + (o.yFitFromFraction ?? 0) * (xMax0 - xMin);
  const fit = all.filter(([x]) => x >= fitFrom);
  const ys = (fit.length ? fit : all).map((p) => p[1]);
  let yLo = ys.length ? Math.min(...all.map((p) => p[1])) : 0;
  let yHi = ys.length ? Math.max(...ys) : 1;
  if (yHi - yLo < 1e-9) {
    yLo -= 0.5;
    yHi += 0.5;
  }
  const pad = 0.05 * (yHi - yLo);
  const yTicks = niceTicks(yLo - pad, yHi + pad);
  const yMin = Math.min(yLo - pad, yTicks[0] ?? yLo);
  const yMax = Math.max(yHi + pad, yTicks[yTicks.length - 1] ?? yHi);
  const X = (x: number) => m.left + ((x - xMin) / (xMax - xMin || 1)) * pw;
  const Y = (y: number) => m.top + ph - ((y - yMin) / (yMax - yMin || 1)) * ph;
  const clipped = all.some(([, y]) => y > yMax);

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<defs><clipPath id="plot"><rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}"/></clipPath></defs>`);
  out.push(`<text class="title" x="${m.left}" y="22" font-size="16" font-weight="bold">${esc(o.title)}</text>`);
  if (o.subtitle) out.push(`<text class="subtitle" x="${m.left}" y="42" fill="#555">${esc(o.subtitle)}</text>`);
  // grid and ticks
  for (const v of xTicks) {
    const x = X(v).toFixed(1);
    out.push(`<line class="grid" x1="${x}" y1="${m.top}" x2="${x}" y2="${m.top + ph}" stroke="#eee"/>`);
    out.push(`<line class="tick x" x1="${x}" y1="${m.top + ph}" x2="${x}" y2="${m.top + ph + 5}" stroke="#333"/>`);
    out.push(`<text class="tick-label x" x="${x}" y="${m.top + ph + 18}" text-anchor="middle">${label(v)}</text>`);
  }
  for (const v of yTicks) {
    const y = Y(v).toFixed(1);
    out.push(`<line class="grid" x1="${m.left}" y1="${y}" x2="${m.left + pw}" y2="${y}" stroke="#eee"/>`);
    out.push(`<line class="tick y" x1="${m.left - 5}" y1="${y}" x2="${m.left}" y2="${y}" stroke="#333"/>`);
    out.push(`<text class="tick-label y" x="${m.left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${label(v)}</text>`);
  }
  // axes
  out.push(`<line class="axis x" x1="${m.left}" y1="${m.top + ph}" x2="${m.left + pw}" y2="${m.top + ph}" stroke="#333"/>`);
  out.push(`<line class="axis y" x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + ph}" stroke="#333"/>`);
  out.push(`<text class="axis-label x" x="${m.left + pw / 2}" y="${H - 10}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  out.push(
    `<text class="axis-label y" x="16" y="${m.top + ph / 2}" text-anchor="middle" transform="rotate(-90 16 ${m.top + ph / 2})">${esc(o.yLabel)}${clipped ? ' (clipped above)' : ''}</text>`,
  );
  // series
  o.series.forEach((s, k) => {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    const attr = `data-series="${esc(s.name)}"`;
    if (pts.length && s.line !== false) {
      const d = pts.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(' ');
      out.push(`<polyline class="series" ${attr} clip-path="url(#plot)" fill="none" stroke="${s.color}" stroke-width="1.8" points="${d}"/>`);
    }
    if (pts.length) {
      for (const [x, y] of pts) {
        if (y <= yMax) out.push(`<circle class="point" ${attr} cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="2.2" fill="${s.color}"/>`);
      }
    }
    // event ticks: one row per series under the axis
    const row = m.top + ph + 24 + 4 * k;
    for (const x of s.marks ?? []) {
      out.push(`<line class="mark" ${attr} x1="${X(x).toFixed(1)}" y1="${row}" x2="${X(x).toFixed(1)}" y2="${row + 3}" stroke="${s.color}" stroke-width="2"/>`);
    }
    // legend
    const ly = m.top + 10 + 20 * k;
    const lx = m.left + pw + 16;
    out.push(`<line class="legend-line" x1="${lx}" y1="${ly}" x2="${lx + 22}" y2="${ly}" stroke="${s.color}" stroke-width="2.5"/>`);
    out.push(`<text class="legend" x="${lx + 28}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`);
  });
  if (o.series.some((s) => s.marks?.length)) {
    const ly = m.top + 10 + 20 * o.series.length + 6;
    out.push(`<text class="legend-note" x="${m.left + pw + 16}" y="${ly}" fill="#555" font-size="11">ticks under the axis:</text>`);
    out.push(`<text class="legend-note" x="${m.left + pw + 16}" y="${ly + 14}" fill="#555" font-size="11">stage failures</text>`);
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
