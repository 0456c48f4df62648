/**
 * A diloco run's stored replica assignment (store.ts dp_assignments) as the record the local
 * trainer replays (`train:local --replicas ... --dp diloco --assignment <file>`,
 * shared/dp/replica-assignment.ts). The reference runs a fixed number of replicas per stage from
 * iteration 0, so the export is the longest prefix of the run, from iteration 0, of consecutive
 * iterations that ran with the same group sizes throughout; `stopped` says why it ends there.
 */
import { ASSIGNMENT_VERSION, type ReplicaAssignment } from '../../shared/dp/replica-assignment.js';
import type { StoredAssignment } from './store.js';

export interface AssignmentExport {
  /** Exactly what `train:local --assignment` reads. */
  record: ReplicaAssignment;
  /** Why the record ends where it does (the run's later iterations are not in it). */
  stopped: string;
}

export function exportAssignment(rows: readonly StoredAssignment[]): AssignmentExport {
  const out: number[][][] = [];
  let replicas: number[] | null = null;
  let stopped = `the last stored iteration (${rows.length ? rows.at(-1)!.iteration : 'none'})`;
  for (const [i, r] of rows.entries()) {
    if (r.iteration !== i) {
      stopped = `iteration ${i} is not stored${i === 0 ? ' (a resumed run, or no diloco record)' : ''}`;
      break;
    }
    if (r.replicas === null) {
      stopped = `a group changed during iteration ${i}`;
      break;
    }
    if (replicas && r.replicas.some((n, s) => n !== replicas![s])) {
      stopped = `the group sizes changed at iteration ${i} (${replicas.join(',')} -> ${r.replicas.join(',')})`;
      break;
    }
    replicas ??= r.replicas;
    out.push(r.hops.map((h) => [...h]));
  }
  return { record: { version: ASSIGNMENT_VERSION, replicas: replicas ?? [], iterations: out }, stopped };
}
