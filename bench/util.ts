/**
 * Small helpers shared by the benchmarks: percentiles, table printing, CLI flags (waiting: testing/until.ts).
 * Benchmarks print figures; none of them asserts on speed.
 */
import os from 'node:os';

export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const s = [...samples].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}

export function mean(samples: readonly number[]): number {
  return samples.length ? samples.reduce((a, b) => a + b, 0) / samples.length : NaN;
}

/** Fixed-width table; numbers are printed as given (format them first). */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => r.map((v, c) => (c === 0 ? v.padEnd(widths[c]!) : v.padStart(widths[c]!))).join('  ');
  return [line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function fmt(x: number, digits = 2): string {
  if (!Number.isFinite(x)) return '-';
  return x.toFixed(digits);
}

export function fmtBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(2)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

/** `--name value` / `--flag` parsing without surprises (unknown flags are an error). */
export function flags(argv: string[], known: Record<string, 'string' | 'boolean'>): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') continue;
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
    if (!m || !(m[1]! in known)) throw new Error(`unknown argument "${a}"; known: ${Object.keys(known).map((k) => `--${k}`).join(' ')}`);
    const name = m[1]!;
    if (known[name] === 'boolean') out[name] = true;
    else {
      const v = m[2] ?? argv[++i];
      if (v === undefined) throw new Error(`--${name} needs a value`);
      out[name] = v;
    }
  }
  return out;
}

/** A comma-separated flag value as a list (`fallback` when the flag is absent). */
export function list(v: string | boolean | undefined, fallback: string[]): string[] {
  return typeof v === 'string' ? v.split(',').map((x) => x.trim()).filter(Boolean) : fallback;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** One line naming the machine, for the record. */
export function machine(): string {
  const cpus = os.cpus();
  return `${cpus.length} x ${cpus[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}; ${loadLine()}`;
}

/** The 1-minute load average against the core count: other work on the machine skews timings. */
export function loadLine(): string {
  const l = os.loadavg()[0]!;
  const n = os.cpus().length;
  return `load ${l.toFixed(2)} on ${n} cores${l > 0.5 ? ' (BUSY: other processes compete for the CPU; figures are noisy)' : ''}`;
}
