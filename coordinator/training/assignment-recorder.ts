/**
 * The record of which replica ran each hop (shared/dp/replica-assignment.ts): per training
 * iteration, microbatch and forward hop, the group slot (joining order) of the tab the forward
 * task was sent to; the backward of a hop runs where its forward ran. A re-run (a lost replica's
 * hops on a sibling) overwrites the entry. `train:local --replicas R --dp diloco --assignment`
 * replays it, so a swarm's run can be compared with the reference (coordinator/tests/diloco.test.ts).
 * Kept in memory (a few bytes per hop); `stored(it)` is the row the coordinator stores with the
 * run after each iteration (coordinator/record/store.ts dp_assignments), with the group sizes the
 * iteration ran with (null when a group changed while its tasks were sent: no fixed-R replay).
 */
import { ASSIGNMENT_VERSION, type ReplicaAssignment } from '../../shared/dp/replica-assignment.js';
import type { Volunteer } from '../tabs/registry.js';
import type { TaskSender } from './task-book.js';
import type { StoredAssignment } from '../record/store.js';

export class AssignmentRecorder {
  private readonly iterations: number[][][] = [];
  /** Per iteration, the group sizes its forward tasks were sent with (null: they changed meanwhile). */
  private readonly sizes: (number[] | null)[] = [];

  constructor(
    private readonly microbatches: number,
    /** The tabs serving a stage, in group-slot order. */
    private readonly replicas: (stage: number) => readonly Volunteer[],
    /** Stages of the run (for the group sizes stored with each iteration). */
    private readonly nStages = 0,
  ) {}

  /** A sender that records every forward training task before sending it with `inner`. */
  wrap(inner: TaskSender): TaskSender {
    return {
      send: (v, meta, input, targets) => {
        if (meta.dir === 'F') {
          const slot = this.replicas(meta.stage).indexOf(v);
          if (slot >= 0) ((this.iterations[meta.iteration] ??= Array.from({ length: this.microbatches }, () => []))[meta.mb]!)[meta.hop] = slot;
          const now = Array.from({ length: this.nStages }, (_, s) => this.replicas(s).length);
          const was = this.sizes[meta.iteration];
          if (was === undefined) this.sizes[meta.iteration] = now;
          else if (was !== null && was.some((n, s) => n !== now[s])) this.sizes[meta.iteration] = null;
        }
        inner.send(v, meta, input, targets);
      },
    };
  }

  /** Iteration `iteration`'s row to store with the run (null: nothing recorded for it). */
  stored(iteration: number): StoredAssignment | null {
    const hops = this.iterations[iteration];
    if (!hops) return null;
    return { iteration, replicas: this.sizes[iteration] ?? null, hops: hops.map((h) => [...h]) };
  }

  /** The record of the first `iterations` iterations, with `replicas` per stage (checked by the reference before use). */
  record(replicas: number[], iterations: number): ReplicaAssignment {
    return { version: ASSIGNMENT_VERSION, replicas, iterations: this.iterations.slice(0, iterations).map((mbs) => mbs.map((hops) => [...hops])) };
  }
}
