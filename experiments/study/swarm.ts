/**
 * The churn study's validation on the real swarm (docs/experiments.md, "Churn study"): the real
 * coordinator (coordinator/main.ts) and Node volunteers, each a separate process, under the
 * operator's churn (every stage's tab fails with probability p after each iteration, seeded) at a
 * compressed rate. A dropped volunteer process exits like a closed tab; a new one joins after
 * `replacementWaitMs`. The harness records, from the operator namespace, every iteration (time,
 * iteration, train and validation loss) and when the target validation loss is first reached.
 *
 * Every process it starts is killed when the run ends, fails or times out.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { IterationRecord } from '../../shared/protocol/operator.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io as ioClient } from 'socket.io-client';
import type { RecoveryStrategy } from '../../shared/run-settings.js';
import { freePort } from '../../testing/child.js';

const ROOT = new URL('../..', import.meta.url).pathname;

export interface SwarmRunOptions {
  strategy: RecoveryStrategy;
  stages: number;
  microbatches: number;
  batch: number;
  seqLen: number;
  lr: number;
  seed: number;
  evalEvery: number;
  evalBatches: number;
  checkpointEvery: number;
  replicaEvery: number;
  /** Per-stage failure probability after each iteration (operator churn, mode `iteration`). */
  churnProbability: number;
  churnSeed: number;
  /** Churn starts after this many completed iterations (the first ones measure the iteration time). */
  warmupIterations: number;
  /** A lost volunteer's process is replaced after this long. */
  replacementWaitMs: number;
  targetLoss: number;
  maxIterations: number;
  timeoutMs: number;
  log?: (line: string) => void;
}

export interface SwarmPoint {
  /** Seconds since the first iteration started. */
  t: number;
  iteration: number;
  trainLoss: number;
  valLoss: number | null;
  /** Seconds of the iteration itself (the coordinator's record). */
  seconds: number;
}

export interface SwarmRunResult {
  strategy: RecoveryStrategy;
  points: SwarmPoint[];
  /** Volunteer processes the churn dropped. */
  failures: number;
  /** Seconds from each drop to the next completed iteration. */
  recoverySeconds: number[];
  /** Seconds since the first iteration when the validation loss first reached the target. */
  timeToTarget: number | null;
  /** Iteration counter then (a checkpoint rollback lowers it). */
  iterationAtTarget: number | null;
  /** Mean gap between consecutive completed iterations with no failure (or checkpoint) in between (s). */
  iterationSeconds: number;
  /** Checkpoint baseline: mean extra seconds of a gap in which a checkpoint was written. */
  checkpointSeconds: number | null;
  /** Churn was on from this many seconds. */
  churnFrom: number;
}

/** Runs one strategy on a fresh coordinator until the target is reached (or the limits). */
export async function runSwarm(o: SwarmRunOptions): Promise<SwarmRunResult> {
  const log = o.log ?? (() => {});
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'study-swarm-'));
  const token = `study-${port}-${Date.now()}`;
  const procs = new Set<ChildProcess>();
  let stopping = false;
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const node = (args: string[]) => {
    // `node --import tsx` rather than the tsx CLI, whose forked child a kill would orphan.
    const p = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d) => (err = (err + d).slice(-2000)));
    procs.add(p);
    p.once('exit', () => procs.delete(p));
    return { p, err: () => err };
  };
  const coord = node([
    join(ROOT, 'coordinator/main.ts'), '--port', String(port), '--data-dir', dataDir, '--skip-build', '--new-run',
    '--stages', String(o.stages), '--microbatches', String(o.microbatches), '--batch', String(o.batch), '--seq', String(o.seqLen),
    '--lr', String(o.lr), '--seed', String(o.seed), '--eval-every', String(o.evalEvery), '--eval-batches', String(o.evalBatches),
    '--recovery', o.strategy, '--checkpoint-every', String(o.checkpointEvery), '--replica-every', String(o.replicaEvery),
    '--max-iterations', String(o.maxIterations), '--operator-token', token, '--resume-wait', '0',
  ]);
  const rows: IterationRecord[] = [];
  const drops: number[] = [];
  let volunteers = 0;
  const startVolunteer = () => {
    if (stopping) return;
    const v = node([join(ROOT, 'experiments/study/volunteer-process.ts'), url, `v${volunteers++}`]);
    v.p.once('exit', () => {
      if (stopping) return;
      drops.push(Date.now());
      log(`  volunteer dropped (${drops.length}); replacement in ${o.replacementWaitMs} ms`);
      const t = setTimeout(() => {
        timers.delete(t);
        startVolunteer();
      }, o.replacementWaitMs);
      timers.add(t);
    });
  };
  const op = ioClient(`${url}/operator`, { auth: { token }, transports: ['websocket'], reconnectionDelay: 200 });
  try {
    const deadline = Date.now() + o.timeoutMs;
    // Wait for the coordinator to listen.
    for (;;) {
      if (Date.now() > deadline) throw new Error(`coordinator did not start: ${coord.err()}`);
      if (coord.p.exitCode !== null) throw new Error(`coordinator exited (${coord.p.exitCode}): ${coord.err()}`);
      const ok = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
      if (ok) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    let churnOn = false;
    let reached: { t: number; iteration: number } | null = null;
    let tick: ReturnType<typeof setInterval> | undefined;
    const done = new Promise<void>((resolve, reject) => {
      op.on('iteration', (r: IterationRecord) => {
        rows.push(r);
        const t0 = rows[0]!.time - rows[0]!.seconds * 1000;
        if (!churnOn && rows.length >= o.warmupIterations) {
          churnOn = true;
          op.emit('churn', { mode: 'iteration', probability: o.churnProbability, seed: o.churnSeed }, () => {});
        }
        if (!reached && r.valLoss !== null && r.valLoss <= o.targetLoss) {
          reached = { t: (r.time - t0) / 1000, iteration: r.iteration };
          resolve();
        }
        if (rows.length >= o.maxIterations) resolve();
      });
      tick = setInterval(() => {
        if (Date.now() > deadline) reject(new Error(`swarm run (${o.strategy}) timed out after ${o.timeoutMs} ms at ${rows.length} iterations`));
        if (coord.p.exitCode !== null) {
          if (reached || rows.length >= o.maxIterations) resolve();
          else reject(new Error(`coordinator exited (${coord.p.exitCode}): ${coord.err()}`));
        }
      }, 200);
    });
    for (let i = 0; i < o.stages; i++) startVolunteer();
    try {
      await done;
    } finally {
      clearInterval(tick);
    }
    const t0 = rows[0]!.time - rows[0]!.seconds * 1000;
    const points: SwarmPoint[] = rows.map((r) => ({ t: (r.time - t0) / 1000, iteration: r.iteration, trainLoss: r.trainLoss, valLoss: r.valLoss, seconds: r.seconds }));
    // Gaps between consecutive iterations with no drop in between: the failure-free iteration cost.
    const gaps: { gap: number; iteration: number }[] = [];
    for (let i = 1; i < rows.length; i++) {
      const a = rows[i - 1]!.time;
      const b = rows[i]!.time;
      if (!drops.some((d) => d > a - 50 && d <= b)) gaps.push({ gap: (b - a) / 1000, iteration: rows[i]!.iteration });
    }
    const plainGaps = gaps.filter((g) => o.strategy !== 'checkpoint' || (g.iteration - 1) % o.checkpointEvery !== 0).map((g) => g.gap);
    // The mean, not the median: with --eval-every > 1 only some gaps carry a validation pass.
    const iterationSeconds = plainGaps.length ? plainGaps.reduce((x, y) => x + y, 0) / plainGaps.length : NaN;
    // A checkpoint is written after the iteration that completes a multiple of the interval, so it
    // lengthens the gap to the next iteration.
    const ckGaps = o.strategy === 'checkpoint' ? gaps.filter((g) => (g.iteration - 1) % o.checkpointEvery === 0 && g.iteration > 1).map((g) => g.gap - iterationSeconds) : [];
    const recoverySeconds = drops.map((d) => {
      const next = rows.find((r) => r.time > d);
      return next ? (next.time - d) / 1000 : NaN;
    }).filter(Number.isFinite);
    const churnRow = rows[Math.min(rows.length, o.warmupIterations) - 1];
    const r = reached as { t: number; iteration: number } | null;
    return {
      strategy: o.strategy,
      points,
      failures: drops.length,
      recoverySeconds,
      timeToTarget: r?.t ?? null,
      iterationAtTarget: r?.iteration ?? null,
      iterationSeconds,
      checkpointSeconds: ckGaps.length ? ckGaps.reduce((x, y) => x + y, 0) / ckGaps.length : null,
      churnFrom: churnRow ? (churnRow.time - t0) / 1000 : 0,
    };
  } finally {
    stopping = true;
    for (const t of timers) clearTimeout(t);
    op.close();
    const exits = [...procs].map((p) => new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r(null) : p.once('exit', r))));
    for (const p of procs) p.kill('SIGKILL');
    await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 5000))]);
    rmSync(dataDir, { recursive: true, force: true });
  }
}
