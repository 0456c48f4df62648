/**
 * The decoded, verified weights of the kept checkpoints, per stage, so that a background fit does
 * not read, hash and decode every checkpoint of the history again on the coordinator's event loop
 * (`bench:cpsr-overhead`: about 13 ms per iteration on tiny without it). An entry is keyed by the
 * file's path, its recorded hash, and its size and modification time on disk: a file rewritten
 * since (a torn write, a stranger's disk) is read and verified again. Entries of checkpoints no
 * longer kept are dropped, so it holds at most every stage's history (within CPSR_HISTORY_BYTES).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { CheckpointRecord } from '../record/store.js';

export class CpsrHistoryCache {
  private entries = new Map<string, { key: string; state: Float32Array }>();

  /** The stage's flat weights of checkpoint `ck`: cached, or `load()` (which verifies) and kept. */
  get(stage: number, ck: CheckpointRecord, load: () => Float32Array): Float32Array {
    const file = `stage-${stage}.bin`;
    const path = join(ck.dir, file);
    const rec = ck.files.find((f) => f.file === file);
    let key: string | null = null;
    try {
      const st = statSync(path);
      key = `${rec?.sha256}:${st.size}:${st.mtimeMs}`;
    } catch {
      key = null; // missing: load() says so
    }
    const hit = this.entries.get(path);
    if (key && hit && hit.key === key) return hit.state;
    const state = load();
    if (key) this.entries.set(path, { key, state });
    return state;
  }

  /** Keeps only the entries of these checkpoints. */
  retain(kept: readonly CheckpointRecord[]): void {
    const dirs = new Set(kept.map((k) => k.dir));
    for (const path of this.entries.keys()) if (![...dirs].some((d) => path.startsWith(`${d}/`))) this.entries.delete(path);
  }
}
