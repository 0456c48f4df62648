/**
 * The run history in SQLite (better-sqlite3): run configuration, per-iteration metrics and the
 * event log, so the dashboard's history survives a coordinator restart and past runs can be
 * reviewed. Weights are never written here (CheckFree strategies keep no checkpoints).
 *
 * One file, `<dataDir>/swarm.sqlite`, in WAL mode. better-sqlite3 is synchronous: each insert is a
 * few microseconds, far below one iteration, so writes happen inline on the coordinator's loop.
 * Without a data directory the store lives in memory (tests, throwaway runs).
 *
 *   runs        id TEXT PK, created INTEGER (epoch ms), updated INTEGER, settings TEXT (JSON)
 *   iterations  run, iteration (PK together), train_loss, val_loss (NULL when not evaluated),
 *               seconds, time (epoch ms), tokens, stages TEXT (JSON: per-stage volunteer and
 *               compute ms)
 *   events      id INTEGER PK, run, time (epoch ms), kind, message, data TEXT (JSON or NULL)
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { EventRow, IterationRow, RunDetail, RunSummary, StageTiming } from '../shared/protocol/operator.js';

const SCHEMA_VERSION = 1;

export const STORE_FILE = 'swarm.sqlite';

interface RunRecord {
  id: string;
  created: number;
  updated: number;
  settings: string;
  iterations: number;
  last_train: number | null;
  last_val: number | null;
}

interface IterationRecordRow {
  iteration: number;
  train_loss: number;
  val_loss: number | null;
  seconds: number;
  time: number;
  tokens: number;
  stages: string;
}

interface EventRecordRow {
  time: number;
  kind: string;
  message: string;
  data: string | null;
}

/** JSON.stringify that survives what the event log may carry (NaN, Infinity, bigint, cycles). */
function safeJson(v: unknown): string {
  const seen = new WeakSet<object>();
  return JSON.stringify(v, (_k, x: unknown) => {
    if (typeof x === 'bigint') return x.toString();
    if (typeof x === 'number' && !Number.isFinite(x)) return null;
    if (x instanceof Uint8Array) return `<${x.byteLength} bytes>`;
    if (x && typeof x === 'object') {
      if (seen.has(x)) return '[circular]';
      seen.add(x);
    }
    return x;
  });
}

export class RunStore {
  readonly db: Database.Database;
  readonly path: string;
  private stmts;

  /** `dataDir` null/undefined: an in-memory database (nothing survives the process). */
  constructor(dataDir?: string | null) {
    if (dataDir) {
      mkdirSync(dataDir, { recursive: true });
      this.path = join(dataDir, STORE_FILE);
    } else {
      this.path = ':memory:';
    }
    this.db = new Database(this.path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.migrate();
    this.stmts = {
      insertRun: this.db.prepare('INSERT INTO runs (id, created, updated, settings) VALUES (?, ?, ?, ?)'),
      touch: this.db.prepare('UPDATE runs SET updated = max(updated, ?) WHERE id = ?'),
      insertIteration: this.db.prepare(
        `INSERT OR REPLACE INTO iterations (run, iteration, train_loss, val_loss, seconds, time, tokens, stages)
         VALUES (@run, @iteration, @trainLoss, @valLoss, @seconds, @time, @tokens, @stages)`,
      ),
      insertEvent: this.db.prepare('INSERT INTO events (run, time, kind, message, data) VALUES (?, ?, ?, ?, ?)'),
      runs: this.db.prepare(
        `SELECT r.id, r.created, r.updated, r.settings,
                (SELECT count(*) FROM iterations i WHERE i.run = r.id) AS iterations,
                (SELECT train_loss FROM iterations i WHERE i.run = r.id ORDER BY iteration DESC LIMIT 1) AS last_train,
                (SELECT val_loss FROM iterations i WHERE i.run = r.id AND val_loss IS NOT NULL ORDER BY iteration DESC LIMIT 1) AS last_val
         FROM runs r ORDER BY r.created DESC, r.rowid DESC LIMIT ?`,
      ),
      run: this.db.prepare(
        `SELECT r.id, r.created, r.updated, r.settings,
                (SELECT count(*) FROM iterations i WHERE i.run = r.id) AS iterations,
                (SELECT train_loss FROM iterations i WHERE i.run = r.id ORDER BY iteration DESC LIMIT 1) AS last_train,
                (SELECT val_loss FROM iterations i WHERE i.run = r.id AND val_loss IS NOT NULL ORDER BY iteration DESC LIMIT 1) AS last_val
         FROM runs r WHERE r.id = ?`,
      ),
      iterations: this.db.prepare(
        'SELECT iteration, train_loss, val_loss, seconds, time, tokens, stages FROM iterations WHERE run = ? ORDER BY iteration LIMIT ?',
      ),
      events: this.db.prepare(
        'SELECT time, kind, message, data FROM (SELECT id, time, kind, message, data FROM events WHERE run = ? ORDER BY id DESC LIMIT ?) ORDER BY id',
      ),
    };
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new Error(`${this.path} was written by a newer version (schema ${version} > ${SCHEMA_VERSION})`);
    }
    if (version === SCHEMA_VERSION) return;
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        created INTEGER NOT NULL,
        updated INTEGER NOT NULL,
        settings TEXT NOT NULL
      );
      CREATE TABLE IF NOT EXISTS iterations (
        run TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        iteration INTEGER NOT NULL,
        train_loss REAL NOT NULL,
        val_loss REAL,
        seconds REAL NOT NULL,
        time INTEGER NOT NULL,
        tokens INTEGER NOT NULL,
        stages TEXT NOT NULL,
        PRIMARY KEY (run, iteration)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        time INTEGER NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        data TEXT
      );
      CREATE INDEX IF NOT EXISTS events_by_run ON events (run, id);
      PRAGMA user_version = ${SCHEMA_VERSION};
    `);
  }

  startRun(id: string, settings: Record<string, unknown>, created = Date.now()): void {
    this.stmts.insertRun.run(id, created, created, safeJson(settings));
  }

  addIteration(run: string, r: IterationRow): void {
    if (!this.db.open) return;
    this.stmts.insertIteration.run({
      run,
      iteration: r.iteration,
      trainLoss: r.trainLoss,
      valLoss: r.valLoss,
      seconds: r.seconds,
      time: r.time,
      tokens: r.tokens,
      stages: safeJson(r.stages),
    });
    this.stmts.touch.run(r.time, run);
  }

  addEvent(run: string, e: EventRow): void {
    if (!this.db.open) return; // events logged while the coordinator shuts down
    this.stmts.insertEvent.run(run, e.time, e.kind, e.message, e.data === undefined ? null : safeJson(e.data));
    this.stmts.touch.run(e.time, run);
  }

  private summary(r: RunRecord, liveId?: string): RunSummary {
    return {
      id: r.id,
      created: r.created,
      updated: r.updated,
      settings: JSON.parse(r.settings) as Record<string, unknown>,
      iterations: r.iterations,
      lastTrainLoss: r.last_train,
      lastValLoss: r.last_val,
      live: r.id === liveId,
    };
  }

  /** Runs, newest first. */
  listRuns(opts: { limit?: number; liveId?: string } = {}): RunSummary[] {
    return (this.stmts.runs.all(opts.limit ?? 200) as RunRecord[]).map((r) => this.summary(r, opts.liveId));
  }

  getRun(id: string, liveId?: string): RunSummary | null {
    const r = this.stmts.run.get(id) as RunRecord | undefined;
    return r ? this.summary(r, liveId) : null;
  }

  iterations(run: string, limit = 100_000): IterationRow[] {
    return (this.stmts.iterations.all(run, limit) as IterationRecordRow[]).map((r) => ({
      iteration: r.iteration,
      trainLoss: r.train_loss,
      valLoss: r.val_loss,
      seconds: r.seconds,
      time: r.time,
      tokens: r.tokens,
      stages: JSON.parse(r.stages) as StageTiming[],
    }));
  }

  /** The last `limit` events of a run, oldest first. */
  events(run: string, limit = 5000): EventRow[] {
    return (this.stmts.events.all(run, limit) as EventRecordRow[]).map((e) => ({
      time: e.time,
      kind: e.kind,
      message: e.message,
      ...(e.data !== null ? { data: JSON.parse(e.data) as Record<string, unknown> } : {}),
    }));
  }

  detail(run: string, liveId?: string): RunDetail | null {
    const summary = this.getRun(run, liveId);
    if (!summary) return null;
    return { run: summary, iterations: this.iterations(run), events: this.events(run) };
  }

  /** The last completed iteration recorded for a run (0 when none). */
  lastIteration(run: string): number {
    const r = this.db.prepare('SELECT max(iteration) AS it FROM iterations WHERE run = ?').get(run) as { it: number | null } | undefined;
    return r?.it ?? 0;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
