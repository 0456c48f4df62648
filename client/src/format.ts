/** Number, duration and time formatting for both pages (the volunteer page and the dashboard). */

export function num(v: number | null | undefined, digits = 2, unit = ''): string {
  if (v == null || !Number.isFinite(v)) return '—';
  return `${v.toFixed(digits)}${unit}`;
}

/** 1234 -> "1.2k", 1234567 -> "1.2M". */
export function compact(v: number | null | undefined): string {
  if (v == null || !Number.isFinite(v)) return '—';
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return v.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : 2);
}

/** Whole seconds, minutes and hours ("42s", "3m 05s", "2h 07m"); `precise` keeps tenths under a minute ("4.2s"). */
export function duration(seconds: number | null | undefined, precise = false): string {
  if (seconds == null || !Number.isFinite(seconds)) return '—';
  if (precise && seconds < 60) return `${Math.max(0, seconds).toFixed(1)}s`;
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  return `${h}h ${String(m % 60).padStart(2, '0')}m`;
}

export function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString(undefined, { hour12: false });
}

export function dateTime(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { hour12: false });
}

/** Human name of the pipeline segment a stage owns. */
export function stageRole(stage: number, stages: number): string {
  const parts = [];
  if (stage === 0) parts.push('embedding');
  parts.push('blocks');
  if (stage === stages - 1) parts.push('head');
  return parts.join(' + ');
}

/** "stage 2 needs a volunteer" for stages that have waited past the coordinator's --vacancy-alert ('' for none). */
export function fmtLongVacancies(stages: readonly number[] | undefined): string {
  if (!stages || stages.length === 0) return '';
  return stages.length === 1 ? `stage ${stages[0]} needs a volunteer` : `stages ${stages.join(', ')} need a volunteer`;
}
