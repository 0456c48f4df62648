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
 *   events      id INTEGER PK, run, time (epoch ms), kind, message, data TEXT (JSON or NULL);
 *               capped at `maxEventsPerRun` rows per run and `maxEvents` in all (oldest pruned)
 *   checkpoints run, iteration (PK together), dir, files TEXT (JSON: per-stage file, bytes, sha256),
 *               bytes, seconds, time: the checkpoint baseline's files on disk (checkpoint-store.ts)
 *   skip_paths  run, iteration (PK together), plan TEXT (JSON {vacant, paths}): SkipPipe's applied
 *               paths (skip-planner.ts), so a restarted coordinator serves the whole recorded schedule
 *   dp_assignments run, iteration (PK together), replicas TEXT (JSON: group size per stage, or null
 *               when a group changed during the iteration), hops TEXT (JSON [microbatch][hop]: the
 *               group slot that ran it): `--dp diloco`'s record of who ran what (assignment-recorder.ts),
 *               exported for `train:local --assignment` (assignment-export.ts)
 *
 * A full disk, a read-only file or a busy database (another process holding the write lock) never
 * takes the coordinator down: a failed write is counted (`swarm_store_write_failures_total`),
 * logged (at most every 10 s) and queued; queued rows are retried in order with a growing backoff
 * (new rows join the queue meanwhile, so the loop never waits on a locked file more than once per
 * retry) and given up, counted, only when more than `maxQueued` are waiting. Dashboard reads load
 * the newest rows of a run through the primary keys, so their cost is bounded by the row limit,
 * not by the length of the history.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { EventRow, IterationRecord, RunDetail, RunSummary, StageTiming } from '../../shared/protocol/operator.js';
import { clipData, clipText } from '../gateway/clip.js';
import type { Logger } from './log.js';
import type { SwarmMetrics } from './metrics.js';

const SCHEMA_VERSION = 4;

/** Newest rows a dashboard payload (init, run detail) carries. */
export const DASHBOARD_ITERATIONS = 10_000;
export const DASHBOARD_EVENTS = 2000;

export interface StoreOptions {
  /** Where write failures are counted. */
  metrics?: Pick<SwarmMetrics, 'storeWriteFailures' | 'storeRowsDropped'>;
  log?: Logger;
  /** Events kept per run, and in all (default 100,000 and 1,000,000). */
  maxEventsPerRun?: number;
  maxEvents?: number;
  /** Failed writes kept for retry (default 20,000). */
  maxQueued?: number;
  /** How long one write waits for a lock held by another connection (default 100 ms). */
  busyTimeoutMs?: number;
}

/** SQLite errors a later retry may get past (lock held, disk full, file read-only, I/O). */
function transient(e: unknown): boolean {
  const code = String((e as { code?: unknown })?.code ?? '');
  return /^SQLITE_(BUSY|LOCKED|FULL|READONLY|IOERR|CANTOPEN|PROTOCOL|NOMEM)/.test(code);
}

export interface CheckpointRecord {
  run: string;
  iteration: number;
  dir: string;
  files: { file: string; bytes: number; sha256: string }[];
  bytes: number;
  seconds: number;
  time: number;
}

export const STORE_FILE = 'swarm.sqlite';

/** One iteration of a diloco run's replica assignment, as stored. */
export interface StoredAssignment {
  iteration: number;
  /** Group size of each stage while the iteration ran; null when a group changed during it. */
  replicas: number[] | null;
  /** [microbatch][hop] -> group slot of the tab that ran the hop's forward (and backward). */
  hops: number[][];
}

interface RunRecord {
  id: string;
  created: number;
  updated: number;
  settings: string;
  iterations: number;
  last_train: number | null;
  last_val: number | null;
}

/** An iteration as SQLite returns it: the IterationRecord's columns (aliased), its stages as JSON. */
type StoredIteration = Omit<IterationRecord, 'stages'> & { stages: string };

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

interface QueuedWrite {
  table: string;
  op: () => void;
}

export class RunStore {
  readonly db: Database.Database;
  readonly path: string;
  private stmts;
  private queue: QueuedWrite[] = [];
  private retryAt = 0;
  private backoffMs = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private lastLog = 0;
  private insertsSincePrune = 0;
  private readonly maxEventsPerRun: number;
  private readonly maxEvents: number;
  private readonly maxQueued: number;
  /** Writes that failed, and rows given up (also in the metrics when given). */
  failures = 0;
  dropped = 0;

  /** `dataDir` null/undefined: an in-memory database (nothing survives the process). */
  constructor(dataDir?: string | null, private o: StoreOptions = {}) {
    if (dataDir) {
      mkdirSync(dataDir, { recursive: true });
      this.path = join(dataDir, STORE_FILE);
    } else {
      this.path = ':memory:';
    }
    this.maxEventsPerRun = o.maxEventsPerRun ?? 100_000;
    this.maxEvents = o.maxEvents ?? 1_000_000;
    this.maxQueued = o.maxQueued ?? 20_000;
    this.db = new Database(this.path, { timeout: o.busyTimeoutMs ?? 100 });
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
        `SELECT iteration, train_loss AS trainLoss, val_loss AS valLoss, seconds, time, tokens, stages FROM
           (SELECT iteration, train_loss, val_loss, seconds, time, tokens, stages FROM iterations WHERE run = ? ORDER BY iteration DESC LIMIT ?)
         ORDER BY iteration`,
      ),
      events: this.db.prepare(
        'SELECT time, kind, message, data FROM (SELECT id, time, kind, message, data FROM events WHERE run = ? ORDER BY id DESC LIMIT ?) ORDER BY id',
      ),
      pruneRunEvents: this.db.prepare(
        'DELETE FROM events WHERE run = ? AND id < (SELECT id FROM events WHERE run = ? ORDER BY id DESC LIMIT 1 OFFSET ?)',
      ),
      pruneEvents: this.db.prepare('DELETE FROM events WHERE id < (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?)'),
      insertCheckpoint: this.db.prepare(
        'INSERT OR REPLACE INTO checkpoints (run, iteration, dir, files, bytes, seconds, time) VALUES (@run, @iteration, @dir, @files, @bytes, @seconds, @time)',
      ),
      checkpoints: this.db.prepare('SELECT run, iteration, dir, files, bytes, seconds, time FROM checkpoints WHERE run = ? ORDER BY iteration DESC'),
      deleteCheckpoint: this.db.prepare('DELETE FROM checkpoints WHERE run = ? AND iteration = ?'),
    };
  }

  /**
   * Runs one write now, or queues it behind earlier failed ones; never throws. Errors that a
   * retry cannot fix (a constraint: a bug) are counted and logged, and the row is given up.
   */
  private write(table: string, op: () => void): boolean {
    if (!this.db.open) return false; // rows logged while the coordinator shuts down
    if (this.queue.length > 0) {
      this.enqueue({ table, op });
      if (Date.now() >= this.retryAt) this.flush();
      return this.queue.length === 0;
    }
    try {
      op();
      return true;
    } catch (e) {
      this.failed(table, e);
      if (transient(e)) this.enqueue({ table, op });
      return false;
    }
  }

  private failed(table: string, e: unknown): void {
    this.failures++;
    this.o.metrics?.storeWriteFailures.inc({ table });
    const now = Date.now();
    if (now - this.lastLog < 10_000) return;
    this.lastLog = now;
    const err = { err: (e as Error)?.message, code: (e as { code?: unknown })?.code, table, queued: this.queue.length, failures: this.failures };
    if (this.o.log) this.o.log.error(err, `SQLite write failed (${this.path}); training continues, rows are retried`);
    else console.error('SQLite write failed', err);
  }

  private enqueue(w: QueuedWrite): void {
    this.queue.push(w);
    if (this.queue.length > this.maxQueued) {
      const n = this.queue.length - this.maxQueued;
      this.queue.splice(0, n);
      this.dropped += n;
      this.o.metrics?.storeRowsDropped.inc(n);
    }
    if (this.retryAt <= Date.now()) {
      this.backoffMs = Math.min(5000, Math.max(100, this.backoffMs * 2));
      this.retryAt = Date.now() + this.backoffMs;
    }
    if (!this.retryTimer) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.flush();
      }, Math.max(0, this.retryAt - Date.now()));
      this.retryTimer.unref();
    }
  }

  /** Retries queued writes in order, in one transaction; stops (and backs off) at the first failure. */
  flush(): void {
    if (!this.db.open || this.queue.length === 0) return;
    const batch = this.queue.splice(0);
    let done = 0;
    try {
      this.db.transaction(() => {
        for (const w of batch) {
          w.op();
          done++;
        }
      })();
      this.backoffMs = 0;
      this.retryAt = 0;
    } catch (e) {
      const w = batch[done]!;
      this.failed(w.table, e);
      // The transaction rolled back: everything is retried, except a row that can never succeed.
      const rest = transient(e) ? batch : [...batch.slice(0, done), ...batch.slice(done + 1)];
      this.queue.unshift(...rest);
      this.retryAt = 0;
      if (this.queue.length) this.enqueue(this.queue.pop()!);
    }
  }

  /** Rows waiting for a retry (0 when the database keeps up). */
  get queued(): number {
    return this.queue.length;
  }

  /** Every few hundred events: keep the newest `maxEventsPerRun` of this run and `maxEvents` in all. */
  private pruneEvents(run: string): void {
    if (++this.insertsSincePrune < 500) return;
    this.insertsSincePrune = 0;
    if (this.queue.length > 0 || !this.db.open) return; // not retried: the next prune catches up
    try {
      this.stmts.pruneRunEvents.run(run, run, this.maxEventsPerRun - 1);
      this.stmts.pruneEvents.run(this.maxEvents - 1);
    } catch (e) {
      this.failed('events', e);
    }
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
      CREATE TABLE IF NOT EXISTS checkpoints (
        run TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        iteration INTEGER NOT NULL,
        dir TEXT NOT NULL,
        files TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        seconds REAL NOT NULL,
        time INTEGER NOT NULL,
        PRIMARY KEY (run, iteration)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS stage_claims (
        run TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        token_hash TEXT NOT NULL,
        stage INTEGER NOT NULL,
        PRIMARY KEY (run, token_hash)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS skip_paths (
        run TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        iteration INTEGER NOT NULL,
        plan TEXT NOT NULL,
        PRIMARY KEY (run, iteration)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS dp_assignments (
        run TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        iteration INTEGER NOT NULL,
        replicas TEXT,
        hops TEXT NOT NULL,
        PRIMARY KEY (run, iteration)
      ) WITHOUT ROWID;
      PRAGMA user_version = ${SCHEMA_VERSION};
    `);
  }

  startRun(id: string, settings: Record<string, unknown>, created = Date.now()): void {
    this.write('runs', () => this.stmts.insertRun.run(id, created, created, safeJson(settings)));
  }

  addIteration(run: string, r: IterationRecord): void {
    const stages = safeJson(r.stages); // written by the coordinator, one entry per stage
    this.write('iterations', () => {
      this.stmts.insertIteration.run({
      run,
      iteration: r.iteration,
      trainLoss: r.trainLoss,
      valLoss: r.valLoss,
      seconds: r.seconds,
      time: r.time,
      tokens: r.tokens,
      stages,
      });
      this.stmts.touch.run(r.time, run);
    });
  }

  /** SkipPipe: iteration `iteration` of `run` was applied with `plan` (JSON text; a re-run iteration replaces it). */
  addSkipPlan(run: string, iteration: number, plan: string): void {
    this.write('skip_paths', () => this.db.prepare('INSERT OR REPLACE INTO skip_paths (run, iteration, plan) VALUES (?, ?, ?)').run(run, iteration, plan));
  }

  /** The applied SkipPipe plans of `run` before iteration `before`, oldest first (JSON text as written). */
  skipPlans(run: string, before = Number.MAX_SAFE_INTEGER): { iteration: number; plan: string }[] {
    return this.db.prepare('SELECT iteration, plan FROM skip_paths WHERE run = ? AND iteration < ? ORDER BY iteration').all(run, before) as { iteration: number; plan: string }[];
  }

  /** `--dp diloco`: who ran each hop of `iteration` (assignment-recorder.ts); replicas null: a group changed meanwhile. */
  addAssignment(run: string, a: StoredAssignment): void {
    this.write('dp_assignments', () =>
      this.db.prepare('INSERT OR REPLACE INTO dp_assignments (run, iteration, replicas, hops) VALUES (?, ?, ?, ?)').run(run, a.iteration, a.replicas ? JSON.stringify(a.replicas) : null, JSON.stringify(a.hops)),
    );
  }

  /** A run's stored assignment rows, by iteration. */
  assignments(run: string): StoredAssignment[] {
    const rows = this.db.prepare('SELECT iteration, replicas, hops FROM dp_assignments WHERE run = ? ORDER BY iteration').all(run) as { iteration: number; replicas: string | null; hops: string }[];
    return rows.map((r) => ({ iteration: r.iteration, replicas: r.replicas === null ? null : (JSON.parse(r.replicas) as number[]), hops: JSON.parse(r.hops) as number[][] }));
  }

  addEvent(run: string, e: EventRow): void {
    const kind = clipText(e.kind, 64);
    const message = clipText(e.message);
    const data = e.data === undefined ? null : safeJson(clipData(e.data));
    this.write('events', () => {
      this.stmts.insertEvent.run(run, e.time, kind, message, data);
      this.stmts.touch.run(e.time, run);
    });
    this.pruneEvents(run);
  }

  /**
   * The proof a tab needs to reclaim its stage after a restart: only the hash of the secret the
   * coordinator handed it with the assignment is stored.
   */
  setClaim(run: string, tokenHash: string, stage: number): void {
    this.write('stage_claims', () => this.db.prepare('INSERT OR REPLACE INTO stage_claims (run, token_hash, stage) VALUES (?, ?, ?)').run(run, tokenHash, stage));
  }

  removeClaim(run: string, tokenHash: string): void {
    this.write('stage_claims', () => this.db.prepare('DELETE FROM stage_claims WHERE run = ? AND token_hash = ?').run(run, tokenHash));
  }

  /** Whether a stored claim of `run` for `stage` has this token hash. */
  claimMatches(run: string, stage: number, tokenHash: string): boolean {
    try {
      return this.db.prepare('SELECT 1 FROM stage_claims WHERE run = ? AND stage = ? AND token_hash = ?').get(run, stage, tokenHash) !== undefined;
    } catch {
      return false;
    }
  }

  /** Records a checkpoint written to disk; true when it is in the database now (not only queued). */
  addCheckpoint(c: CheckpointRecord): boolean {
    return this.write('checkpoints', () => this.stmts.insertCheckpoint.run({ ...c, files: JSON.stringify(c.files) }));
  }

  /** A run's recorded checkpoints, newest first. */
  checkpoints(run: string): CheckpointRecord[] {
    const rows = this.stmts.checkpoints.all(run) as (Omit<CheckpointRecord, 'files'> & { files: string })[];
    return rows.map((r) => ({ ...r, files: JSON.parse(r.files) as CheckpointRecord['files'] }));
  }

  deleteCheckpoint(run: string, iteration: number): boolean {
    return this.write('checkpoints', () => this.stmts.deleteCheckpoint.run(run, iteration));
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

  /** The last `limit` iterations of a run, in order. */
  iterations(run: string, limit = DASHBOARD_ITERATIONS): IterationRecord[] {
    return (this.stmts.iterations.all(run, limit) as StoredIteration[]).map((r) => ({ ...r, stages: (JSON.parse(r.stages) as StageTiming[]).map((st) => ({ ...st, norms: st.norms ?? null })) }));
  }

  /** The last `limit` events of a run, oldest first. */
  events(run: string, limit = DASHBOARD_EVENTS): EventRow[] {
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
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (!this.db.open) return;
    this.flush(); // last chance for queued rows
    this.db.close();
  }
}
