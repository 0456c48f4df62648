/**
 * The record of which replica ran each hop (shared/dp/replica-assignment.ts): per training
 * iteration, microbatch and forward hop, the group slot (joining order) of the tab the forward
 * task was sent to; the backward of a hop runs where its forward ran. A re-run (a lost replica's
 * hops on a sibling) overwrites the entry. `train:local --replicas R --dp diloco --assignment`
 * replays it, so a swarm's run can be compared with the reference (coordinator/tests/diloco.test.ts).
 * Kept in memory only (a few bytes per hop); not yet stored with the run or exported.
 */
import { ASSIGNMENT_VERSION, type ReplicaAssignment } from '../../shared/dp/replica-assignment.js';
import type { Volunteer } from '../tabs/registry.js';
import type { TaskSender } from './task-book.js';

export class AssignmentRecorder {
  private readonly iterations: number[][][] = [];

  constructor(
    private readonly microbatches: number,
    /** The tabs serving a stage, in group-slot order. */
    private readonly replicas: (stage: number) => readonly Volunteer[],
  ) {}

  /** A sender that records every forward training task before sending it with `inner`. */
  wrap(inner: TaskSender): TaskSender {
    return {
      send: (v, meta, input, targets) => {
        if (meta.dir === 'F') {
          const slot = this.replicas(meta.stage).indexOf(v);
          if (slot >= 0) ((this.iterations[meta.iteration] ??= Array.from({ length: this.microbatches }, () => []))[meta.mb]!)[meta.hop] = slot;
        }
        inner.send(v, meta, input, targets);
      },
    };
  }

  /** The record of the first `iterations` iterations, with `replicas` per stage (checked by the reference before use). */
  record(replicas: number[], iterations: number): ReplicaAssignment {
    return { version: ASSIGNMENT_VERSION, replicas, iterations: this.iterations.slice(0, iterations).map((mbs) => mbs.map((hops) => [...hops])) };
  }
}
