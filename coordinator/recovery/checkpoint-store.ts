/**
 * The checkpoint baseline's files and their record in SQLite, so a checkpoint survives a
 * coordinator restart (and a crash in the middle of writing one).
 *
 * A checkpoint is one directory `<dir>/<run>/iter-<n>/` holding `stage-<s>.bin` (weights + Adam
 * state of each stage, the bytes the tab uploaded). It is written into a temporary directory,
 * each file fsynced, then renamed into place (a rename is atomic), then recorded in the
 * `checkpoints` table with every file's size and SHA-256; only after that record is in the
 * database are older checkpoints (files and rows) removed. Reading checks that the files exist and
 * match their sizes and hashes: a torn or tampered checkpoint is refused, never loaded.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../record/log.js';
import type { CheckpointRecord, RunStore } from '../record/store.js';

export interface CheckpointStoreDeps {
  store: RunStore;
  /** Checkpoints of run r live under `<dir>/<r>/`. */
  dir: string;
  /** The run being checkpointed now (a resume nobody answers starts a new one). */
  run: () => string;
  log: Logger;
}

export class CheckpointError extends Error {}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export class CheckpointStore {
  /** Newest recorded checkpoint per run (the table is read once per run). */
  private latestByRun = new Map<string, CheckpointRecord | null>();

  constructor(private deps: CheckpointStoreDeps) {}

  private runDir(run = this.deps.run()): string {
    return join(this.deps.dir, run);
  }

  /** The newest checkpoint of the current run, from SQLite after a restart; null when none. */
  latest(): CheckpointRecord | null {
    const run = this.deps.run();
    if (!this.latestByRun.has(run)) this.latestByRun.set(run, this.deps.store.checkpoints(run)[0] ?? null);
    return this.latestByRun.get(run)!;
  }

  /**
   * Writes one state per stage as checkpoint `iteration` of the current run; `startedAt` (epoch
   * ms, when the uploads began) makes `seconds` the whole cost of the checkpoint.
   */
  write(iteration: number, states: Uint8Array[], startedAt: number, keep = 1): CheckpointRecord {
    const run = this.deps.run();
    const root = this.runDir(run);
    const final = join(root, `iter-${iteration}`);
    const tmp = join(root, `.tmp-iter-${iteration}-${process.pid}-${Date.now()}`);
    mkdirSync(tmp, { recursive: true });
    const files: CheckpointRecord['files'] = [];
    try {
      for (const [s, b] of states.entries()) {
        const name = `stage-${s}.bin`;
        const fd = openSync(join(tmp, name), 'w');
        try {
          for (let off = 0; off < b.byteLength; ) off += writeSync(fd, b, off, b.byteLength - off);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        files.push({ file: name, bytes: b.byteLength, sha256: sha256(b) });
      }
      rmSync(final, { recursive: true, force: true }); // a half-recorded earlier attempt at this iteration
      renameSync(tmp, final);
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
    const rec: CheckpointRecord = {
      run,
      iteration,
      dir: final,
      files,
      bytes: files.reduce((a, f) => a + f.bytes, 0),
      seconds: (Date.now() - startedAt) / 1000,
      time: Date.now(),
    };
    // Everything older than the newest `keep` (this one included) goes: 1 for the baseline, a short history for CPSR.
    const previous = this.deps.store.checkpoints(run).filter((c) => c.iteration !== iteration).slice(Math.max(1, Math.floor(keep)) - 1);
    this.latestByRun.set(run, rec);
    // Old checkpoints go only once this one is recorded: a crash now leaves the previous usable.
    if (this.deps.store.addCheckpoint(rec)) this.prune(run, previous);
    else this.deps.log.warn({ iteration }, 'checkpoint written but not yet recorded in SQLite (retried); older checkpoints kept');
    return rec;
  }

  /** The recorded checkpoints of the current run, newest first. */
  recorded(): CheckpointRecord[] {
    return this.deps.store.checkpoints(this.deps.run());
  }

  /** Removes the given older checkpoints and stray temporary directories of `run`. */
  private prune(run: string, older: CheckpointRecord[]): void {
    for (const c of older) {
      rmSync(c.dir, { recursive: true, force: true });
      this.deps.store.deleteCheckpoint(run, c.iteration);
    }
    const root = this.runDir(run);
    const kept = new Set(this.deps.store.checkpoints(run).map((c) => c.dir));
    for (const e of existsSync(root) ? readdirSync(root) : []) {
      const p = join(root, e);
      if (!kept.has(p) && (e.startsWith('.tmp-iter-') || e.startsWith('iter-'))) rmSync(p, { recursive: true, force: true });
    }
  }

  /** The states of a recorded checkpoint, verified against their recorded sizes and hashes. */
  read(c: CheckpointRecord): Uint8Array[] {
    return c.files.map((f) => this.readFile(c, f));
  }

  /** One stage's state of a recorded checkpoint, verified likewise. */
  readStage(c: CheckpointRecord, stage: number): Uint8Array {
    const f = c.files.find((x) => x.file === `stage-${stage}.bin`);
    if (!f) throw new CheckpointError(`checkpoint at iteration ${c.iteration} has no state of stage ${stage}`);
    return this.readFile(c, f);
  }

  private readFile(c: CheckpointRecord, f: CheckpointRecord['files'][number]): Uint8Array {
    const p = join(c.dir, f.file);
    if (!existsSync(p)) throw new CheckpointError(`checkpoint at iteration ${c.iteration}: ${p} is missing`);
    const b = new Uint8Array(readFileSync(p));
    if (b.byteLength !== f.bytes || sha256(b) !== f.sha256) {
      throw new CheckpointError(`checkpoint at iteration ${c.iteration}: ${p} does not match its record (${b.byteLength} bytes, ${f.bytes} recorded)`);
    }
    return b;
  }
}
