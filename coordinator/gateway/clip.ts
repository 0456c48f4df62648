/**
 * Bounds on what strangers can make the coordinator keep: every string that reaches the event
 * log, SQLite or the dashboard is cut to `MAX_TEXT` characters, and structured event data to a
 * small depth, key count and array length. A volunteer controls event names, rejected messages'
 * details and more; none of it may grow memory, the database or a dashboard payload unboundedly.
 */

/** Longest string kept (1 KiB of characters). */
export const MAX_TEXT = 1024;
const MAX_DEPTH = 4;
const MAX_KEYS = 64;
const MAX_ITEMS = 64;

/** `s` cut to at most `max` characters, saying how much was cut (clipping twice changes nothing). */
export function clipText(s: string, max = MAX_TEXT): string {
  if (s.length <= max) return s;
  const keep = Math.max(0, max - 32);
  return `${s.slice(0, keep)}… [${s.length - keep} more chars]`;
}

/** A copy of `v` with every string clipped and depth, keys and array items bounded. */
export function clipData(v: unknown, depth = 0): unknown {
  if (typeof v === 'string') return clipText(v);
  if (v === null || typeof v !== 'object') return v;
  if (v instanceof Uint8Array) return `<${v.byteLength} bytes>`;
  if (depth >= MAX_DEPTH) return Array.isArray(v) ? `[array of ${v.length}]` : '[object]';
  if (Array.isArray(v)) {
    const out = v.slice(0, MAX_ITEMS).map((x) => clipData(x, depth + 1));
    if (v.length > MAX_ITEMS) out.push(`[${v.length - MAX_ITEMS} more items]`);
    return out;
  }
  const out: Record<string, unknown> = {};
  let n = 0;
  for (const [k, x] of Object.entries(v)) {
    if (n++ >= MAX_KEYS) {
      out['[more keys]'] = Object.keys(v).length - MAX_KEYS;
      break;
    }
    out[clipText(k, 128)] = clipData(x, depth + 1);
  }
  return out;
}
