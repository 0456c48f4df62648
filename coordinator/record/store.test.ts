import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { RunStore, STORE_FILE, DASHBOARD_EVENTS, DASHBOARD_ITERATIONS } from './store.js';
import { SwarmMetrics } from './metrics.js';
import { until } from '../../testing/until.js';
import type { IterationRecord } from '../../shared/protocol/operator.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'swarm-store-'));
  dirs.push(d);
  return d;
}

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function row(i: number, valLoss: number | null = null): IterationRecord {
  return {
    iteration: i,
    trainLoss: 5 - i * 0.1,
    valLoss,
    seconds: 0.5 + i,
    time: 1_700_000_000_000 + i * 1000,
    tokens: 256,
    stages: [
      { stage: 0, volunteer: 'v1-aaaa', computeMs: 120 + i, norms: { preClipNorm: 2, postClipNorm: 1, blockNorm: 0.5 } },
      { stage: 1, volunteer: null, computeMs: null, norms: null },
    ],
  };
}

describe('RunStore (SQLite)', () => {
  it('keeps runs, iterations and events across a restart', () => {
    const dir = tempDir();
    const a = new RunStore(dir);
    expect(a.path).toBe(join(dir, STORE_FILE));
    a.startRun('run1', { settings: { preset: 'tiny', stages: 2 } }, 1000);
    a.addIteration('run1', row(1));
    a.addIteration('run1', row(2, 4.5));
    a.addIteration('run1', row(3));
    a.addEvent('run1', { time: 1500, kind: 'join', message: 'v1 joined', data: { volunteer: 'v1', nan: Number.NaN } });
    a.addEvent('run1', { time: 1600, kind: 'recovery', message: 'stage 1 lost', data: { stage: 1, sources: [{ stage: 0, part: 'blocks', bytes: 10 }] } });
    a.addEvent('run1', { time: 1700, kind: 'run', message: 'no data' });
    a.close();
    expect(existsSync(join(dir, STORE_FILE))).toBe(true);

    const b = new RunStore(dir);
    b.startRun('run2', { settings: { preset: 'tiny', stages: 4 } }, 2000);
    b.addIteration('run2', row(1));
    const runs = b.listRuns({ liveId: 'run2' });
    expect(runs.map((r) => r.id)).toEqual(['run2', 'run1']);
    expect(runs[0]).toMatchObject({ live: true, iterations: 1 });
    expect(runs[1]).toMatchObject({ id: 'run1', live: false, iterations: 3, created: 1000, lastTrainLoss: row(3).trainLoss, lastValLoss: 4.5 });
    expect(runs[1]!.settings).toEqual({ settings: { preset: 'tiny', stages: 2 } });
    expect(runs[1]!.updated).toBe(row(3).time);

    const detail = b.detail('run1')!;
    expect(detail.iterations).toEqual([row(1), row(2, 4.5), row(3)]);
    expect(detail.events.map((e) => e.kind)).toEqual(['join', 'recovery', 'run']);
    expect(detail.events[0]!.data).toEqual({ volunteer: 'v1', nan: null });
    expect(detail.events[1]!.data).toEqual({ stage: 1, sources: [{ stage: 0, part: 'blocks', bytes: 10 }] });
    expect(detail.events[2]).toEqual({ time: 1700, kind: 'run', message: 'no data' });
    expect(b.detail('nope')).toBeNull();
    // Iterations of the two runs never mix.
    expect(b.iterations('run2')).toEqual([row(1)]);
    b.close();
  });

  it('returns the last N events oldest first, and ignores writes after close', () => {
    const s = new RunStore(null);
    expect(s.path).toBe(':memory:');
    s.startRun('r', {});
    for (let i = 0; i < 10; i++) s.addEvent('r', { time: i, kind: 'join', message: `e${i}` });
    expect(s.events('r', 3).map((e) => e.message)).toEqual(['e7', 'e8', 'e9']);
    s.close();
    expect(() => s.addEvent('r', { time: 11, kind: 'join', message: 'late' })).not.toThrow();
  });

  it('an iteration for a run it does not know is refused, counted and given up, without throwing', () => {
    const s = new RunStore(null);
    expect(() => s.addIteration('ghost', row(1))).not.toThrow();
    expect(s.failures).toBe(1);
    expect(s.queued).toBe(0); // a constraint is a bug, not something a retry fixes
    expect(s.iterations('ghost')).toEqual([]);
    s.close();
  });
});

describe('RunStore under a busy, read-only or full database', () => {
  const metrics = () => new SwarmMetrics();
  const failures = async (m: SwarmMetrics) => {
    const text = await m.text();
    return [...text.matchAll(/swarm_store_write_failures_total\{table="(\w+)"\} (\d+)/g)].reduce((n, x) => n + Number(x[2]), 0);
  };

  it('another process holding the write lock: writes fail fast, are counted, queued, then land in order', async () => {
    const dir = tempDir();
    const m = metrics();
    const s = new RunStore(dir, { metrics: m, busyTimeoutMs: 50 });
    s.startRun('r', {});
    const other = new Database(join(dir, STORE_FILE), { timeout: 0 });
    other.exec('BEGIN IMMEDIATE'); // holds the write lock, like a backup or a sqlite3 shell would
    const t0 = Date.now();
    for (let i = 1; i <= 200; i++) {
      s.addIteration('r', row(i));
      s.addEvent('r', { time: i, kind: 'join', message: `e${i}` });
    }
    // Only the first write waits out the busy timeout; the rest queue behind it without waiting.
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(s.queued).toBe(400);
    expect(await failures(m)).toBeGreaterThanOrEqual(1);
    s.flush(); // still locked: nothing lost, nothing written
    expect(s.queued).toBe(400);
    other.exec('COMMIT');
    other.close();
    await until(() => s.queued === 0, 'queued rows flushed', 10_000);
    expect(s.iterations('r').map((r) => r.iteration)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(s.events('r', 1000).map((e) => e.message)).toEqual(Array.from({ length: 200 }, (_, i) => `e${i + 1}`));
    s.close();
  });

  it('a read-only database and a full one (max_page_count): counted, never thrown, retried once writable', async () => {
    const m = metrics();
    const s = new RunStore(tempDir(), { metrics: m });
    s.startRun('r', {});
    s.db.pragma('query_only = ON'); // SQLITE_READONLY, as for a file that became read-only
    expect(() => s.addEvent('r', { time: 1, kind: 'join', message: 'while read-only' })).not.toThrow();
    expect(await failures(m)).toBe(1);
    s.db.pragma('query_only = OFF');
    await until(() => s.queued === 0, 'flushed after read-only', 10_000);
    const pages = s.db.pragma('page_count', { simple: true }) as number;
    s.db.pragma(`max_page_count = ${pages}`); // SQLITE_FULL: the disk is full
    for (let i = 0; i < 50; i++) s.addEvent('r', { time: i, kind: 'join', message: 'x'.repeat(1000) });
    expect(await failures(m)).toBeGreaterThan(1);
    expect(s.queued).toBeGreaterThan(0);
    s.db.pragma('max_page_count = 1073741823');
    await until(() => s.queued === 0, 'flushed after the disk has room', 10_000);
    expect(s.events('r', 100).map((e) => e.message)).toEqual(['while read-only', ...Array.from({ length: 50 }, () => 'x'.repeat(1000))]);
    s.close();
  });

  it('the retry queue is bounded: beyond maxQueued the oldest rows are given up and counted', () => {
    const m = metrics();
    const s = new RunStore(null, { metrics: m, maxQueued: 100 });
    s.startRun('r', {});
    s.db.pragma('query_only = ON');
    for (let i = 0; i < 1000; i++) s.addEvent('r', { time: i, kind: 'join', message: `e${i}` });
    expect(s.queued).toBe(100);
    expect(s.dropped).toBe(900);
    s.db.pragma('query_only = OFF');
    s.flush();
    expect(s.events('r', 1000).map((e) => e.message)).toEqual(Array.from({ length: 100 }, (_, i) => `e${900 + i}`));
    s.close();
  });
});

describe('RunStore bounds', () => {
  it('clips strings that reach SQLite and prunes the events table to its cap', () => {
    const s = new RunStore(null, { maxEventsPerRun: 1000 });
    s.startRun('r', {});
    s.addEvent('r', { time: 0, kind: 'rejected', message: 'y'.repeat(100_000), data: { name: 'z'.repeat(100_000), deep: { a: { b: { c: { d: { e: 1 } } } } } } });
    const [big] = s.events('r', 1);
    expect(big!.message.length).toBeLessThan(1100);
    expect(JSON.stringify(big!.data).length).toBeLessThan(1300);
    for (let i = 1; i <= 5000; i++) s.addEvent('r', { time: i, kind: 'join', message: `e${i}` });
    const n = (s.db.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n;
    expect(n).toBeGreaterThanOrEqual(1000);
    expect(n).toBeLessThanOrEqual(1500); // pruned every 500 inserts
    expect(s.events('r', 3).map((e) => e.message)).toEqual(['e4998', 'e4999', 'e5000']);
    s.close();
  });

  it('a long history: the newest rows come back, through the primary keys (cost bounded by rows, not history)', () => {
    const s = new RunStore(null);
    s.startRun('r', {});
    const ev = s.db.prepare("INSERT INTO events (run, time, kind, message, data) VALUES ('r', ?, 'join', ?, NULL)");
    const it = s.db.prepare("INSERT INTO iterations (run, iteration, train_loss, val_loss, seconds, time, tokens, stages) VALUES ('r', ?, 1, NULL, 1, ?, 1, '[]')");
    s.db.transaction(() => {
      for (let i = 1; i <= 200_000; i++) ev.run(i, `e${i}`);
      for (let i = 1; i <= 50_000; i++) it.run(i, i);
    })();
    const events = s.events('r');
    expect(events).toHaveLength(DASHBOARD_EVENTS);
    expect(events[0]!.message).toBe(`e${200_000 - DASHBOARD_EVENTS + 1}`);
    expect(events.at(-1)!.message).toBe('e200000');
    const iterations = s.iterations('r');
    expect(iterations).toHaveLength(DASHBOARD_ITERATIONS);
    expect(iterations.at(-1)!.iteration).toBe(50_000);
    // No sort of the whole history: both reads walk an index backwards and stop at the limit.
    const plan = (sql: string) => (s.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all('r', 10) as { detail: string }[]).map((r) => r.detail).join(' | ');
    const evPlan = plan('SELECT id FROM events WHERE run = ? ORDER BY id DESC LIMIT ?');
    const itPlan = plan('SELECT iteration FROM iterations WHERE run = ? ORDER BY iteration DESC LIMIT ?');
    for (const p of [evPlan, itPlan]) {
      expect(p).toMatch(/USING (COVERING )?(INDEX|PRIMARY KEY)/);
      expect(p).not.toMatch(/TEMP B-TREE/);
    }
    s.close();
  });
});
