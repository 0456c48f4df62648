/** CheckpointStore: atomic files, the SQLite record across a restart, pruning, verification. */
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, rmSync, readdirSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { RunStore } from '../record/store.js';
import { CheckpointStore, CheckpointError } from './checkpoint-store.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const log = pino({ level: 'silent' });

function open(dataDir: string, run = 'r1') {
  const store = new RunStore(dataDir);
  const cks = new CheckpointStore({ store, dir: join(dataDir, 'checkpoints'), run: () => run, log });
  return { store, cks };
}

const states = (seed: number) => [0, 1, 2].map((s) => new Uint8Array(1000 + s).map((_, i) => (i * (seed + s)) & 0xff));

describe('CheckpointStore', () => {
  it('writes atomically, records in SQLite, keeps only the newest, and survives a restart', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ckpt-store-'));
    dirs.push(dataDir);
    const a = open(dataDir);
    a.store.startRun('r1', {});
    expect(a.cks.latest()).toBeNull();
    const t0 = Date.now();
    const first = a.cks.write(3, states(3), t0);
    expect(first).toMatchObject({ run: 'r1', iteration: 3, bytes: 1000 + 1001 + 1002 });
    expect(first.files.map((f) => f.file)).toEqual(['stage-0.bin', 'stage-1.bin', 'stage-2.bin']);
    // A crash while writing the next one leaves a temporary directory, never a half checkpoint.
    const root = join(dataDir, 'checkpoints', 'r1');
    mkdirSync(join(root, '.tmp-iter-5-1-1'));
    writeFileSync(join(root, '.tmp-iter-5-1-1', 'stage-0.bin'), 'torn');
    a.cks.write(6, states(6), t0);
    expect(readdirSync(root)).toEqual(['iter-6']); // older checkpoint and the torn temp dir removed
    expect(a.store.checkpoints('r1').map((c) => c.iteration)).toEqual([6]);
    a.store.close();

    // A restarted coordinator finds the checkpoint in SQLite and reads it back exactly.
    const b = open(dataDir);
    const ck = b.cks.latest()!;
    expect(ck.iteration).toBe(6);
    expect(b.cks.read(ck)).toEqual(states(6));
    // Another run has none.
    expect(open(dataDir, 'r2').cks.latest()).toBeNull();
    b.store.close();
  });

  it('refuses a checkpoint whose files are missing, truncated or altered', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ckpt-store-'));
    dirs.push(dataDir);
    const { store, cks } = open(dataDir);
    store.startRun('r1', {});
    const ck = cks.write(2, states(2), Date.now());
    const f1 = join(ck.dir, 'stage-1.bin');
    const altered = states(2)[1]!;
    altered[10] ^= 1;
    writeFileSync(f1, altered); // same size, other bytes
    expect(() => cks.read(ck)).toThrow(CheckpointError);
    writeFileSync(f1, new Uint8Array(5));
    expect(() => cks.read(ck)).toThrow(/does not match its record/);
    rmSync(f1);
    expect(existsSync(f1)).toBe(false);
    expect(() => cks.read(ck)).toThrow(/missing/);
    store.close();
  });

  it('when the record cannot be written (busy database), older checkpoints are kept', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ckpt-store-'));
    dirs.push(dataDir);
    const { store, cks } = open(dataDir);
    store.startRun('r1', {});
    cks.write(1, states(1), Date.now());
    store.db.pragma('query_only = ON');
    cks.write(2, states(2), Date.now());
    expect(readdirSync(join(dataDir, 'checkpoints', 'r1')).sort()).toEqual(['iter-1', 'iter-2']);
    store.db.pragma('query_only = OFF');
    store.flush();
    expect(store.checkpoints('r1').map((c) => c.iteration)).toEqual([2, 1]);
    store.close();
  });
});
