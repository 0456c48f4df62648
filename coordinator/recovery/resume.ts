/**
 * Coordinator restart without a checkpoint. The coordinator keeps no weights; the tabs do. When a
 * coordinator is started again on the same data directory, it reopens the latest unfinished run
 * from SQLite (its settings and last completed iteration) and waits a short window for tabs to
 * come back: each reconnecting tab says which run, stage and step count it holds and keeps its
 * weights. Then:
 *   - the iteration to resume from is the step count most reclaiming tabs agree on (ties: the
 *     highest; a crash between step acknowledgements can leave a stage one step apart);
 *   - a stage whose tab did not come back, or came back with another step count, is rebuilt by the
 *     configured recovery strategy from the tabs that did;
 *   - if no tab came back, nothing of the run survives: a new run starts from the seed.
 */
import type { Volunteer } from '../tabs/registry.js';
import { RunStore } from '../record/store.js';
import type { RunSettings } from '../../shared/run-settings.js';

export function newRunId(): string {
  return Math.random().toString(36).slice(2, 10);
}

/**
 * The latest run in a data directory that can be resumed (it has completed iterations and has
 * not reached its --max-iterations), with its stored settings.
 */
export function findResumableRun(dataDir: string): { id: string; iteration: number; settings: RunSettings; maxIterations: number } | null {
  const store = new RunStore(dataDir);
  try {
    const latest = store.listRuns({ limit: 1 })[0];
    if (!latest) return null;
    const stored = latest.settings as { settings?: RunSettings; maxIterations?: number };
    if (!stored.settings) return null;
    const iteration = store.lastIteration(latest.id);
    const max = stored.maxIterations ?? 0;
    if (iteration === 0 || (max > 0 && iteration >= max)) return null;
    return { id: latest.id, iteration, settings: stored.settings, maxIterations: max };
  } finally {
    store.close();
  }
}

export interface ResumeClaim {
  volunteer: Volunteer;
  stage: number;
  iteration: number;
}

export interface ResumeDecision {
  /** Iteration to continue from, or null when no tab came back (start a new run). */
  iteration: number | null;
  /** Claims accepted as they are (weights kept). */
  kept: ResumeClaim[];
  /** Stages to rebuild by recovery (missing, or a stale step count). */
  rebuild: number[];
}

/** Decides how a resumed run continues from the tabs that came back. */
export function decideResume(nStages: number, claims: ResumeClaim[]): ResumeDecision {
  if (claims.length === 0) return { iteration: null, kept: [], rebuild: [] };
  const votes = new Map<number, number>();
  for (const c of claims) votes.set(c.iteration, (votes.get(c.iteration) ?? 0) + 1);
  let iteration = -1;
  let best = 0;
  for (const [it, n] of votes) {
    if (n > best || (n === best && it > iteration)) {
      iteration = it;
      best = n;
    }
  }
  // Every tab with the agreed step count keeps its weights: several of one stage are its replicas.
  const kept = claims.filter((c) => c.iteration === iteration);
  const served = new Set(kept.map((c) => c.stage));
  const rebuild: number[] = [];
  for (let s = 0; s < nStages; s++) if (!served.has(s)) rebuild.push(s);
  return { iteration, kept, rebuild };
}
