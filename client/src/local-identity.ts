/**
 * What the volunteer page keeps in this browser's localStorage, and nothing personal: a random id
 * (so the coordinator can total this browser's contributions across visits; never shown to
 * others), the opt-in nickname, the GPU-share setting, and this browser's running totals.
 * Storage may be unavailable (private mode, disabled): then everything lives for this page only.
 */
import { clampDutyPercent } from './messages';

const KEY = { id: 'swarm.browserId', nickname: 'swarm.nickname', duty: 'swarm.dutyPercent', totals: 'swarm.totals.v1' } as const;
const memory = new Map<string, string>();

function read(key: string): string | null {
  try {
    return window.localStorage.getItem(key);
  } catch {
    return memory.get(key) ?? null;
  }
}

function write(key: string, value: string | null): void {
  try {
    if (value === null) window.localStorage.removeItem(key);
    else window.localStorage.setItem(key, value);
  } catch {
    if (value === null) memory.delete(key);
    else memory.set(key, value);
  }
}

/** This browser's random id (22 URL-safe characters, made once). */
export function browserId(): string {
  const saved = read(KEY.id);
  if (saved && /^[A-Za-z0-9_-]{16,64}$/.test(saved)) return saved;
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const id = btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  write(KEY.id, id);
  return id;
}

export function savedNickname(): string | null {
  return read(KEY.nickname);
}

export function saveNickname(nickname: string | null): void {
  write(KEY.nickname, nickname);
}

export function savedDutyPercent(): number {
  const raw = read(KEY.duty);
  return raw === null ? 100 : clampDutyPercent(Number(raw));
}

export function saveDutyPercent(p: number): void {
  write(KEY.duty, String(clampDutyPercent(p)));
}

/** This browser's contribution over all its visits (as its tabs counted it). */
export interface BrowserTotals {
  tokens: number;
  gpuSeconds: number;
  microbatches: number;
}

export function loadTotals(): BrowserTotals {
  try {
    const t = JSON.parse(read(KEY.totals) ?? '{}') as Partial<BrowserTotals>;
    const n = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : 0);
    return { tokens: n(t.tokens), gpuSeconds: n(t.gpuSeconds), microbatches: n(t.microbatches) };
  } catch {
    return { tokens: 0, gpuSeconds: 0, microbatches: 0 };
  }
}

/** Adds a tab's new work (read-modify-write, so several tabs of this browser add up). */
export function addToTotals(delta: BrowserTotals): BrowserTotals {
  const t = loadTotals();
  const next = { tokens: t.tokens + delta.tokens, gpuSeconds: t.gpuSeconds + delta.gpuSeconds, microbatches: t.microbatches + delta.microbatches };
  write(KEY.totals, JSON.stringify(next));
  return next;
}
