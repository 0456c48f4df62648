import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunStore, STORE_FILE } from './store.js';
import type { IterationRow } from '../shared/protocol/operator.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'swarm-store-'));
  dirs.push(d);
  return d;
}

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function row(i: number, valLoss: number | null = null): IterationRow {
  return {
    iteration: i,
    trainLoss: 5 - i * 0.1,
    valLoss,
    seconds: 0.5 + i,
    time: 1_700_000_000_000 + i * 1000,
    tokens: 256,
    stages: [
      { stage: 0, volunteer: 'v1-aaaa', computeMs: 120 + i },
      { stage: 1, volunteer: null, computeMs: null },
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

  it('refuses an iteration or event for a run it does not know', () => {
    const s = new RunStore(null);
    expect(() => s.addIteration('ghost', row(1))).toThrow(/FOREIGN KEY/);
    s.close();
  });
});
