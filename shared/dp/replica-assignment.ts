/**
 * Which replica of its stage ran each hop of each microbatch: the record that lets the local
 * trainer replay a swarm's data-parallel run (in `--dp diloco` every replica steps on its own
 * gradient, so who ran what changes the numbers). JSON form, what a swarm records:
 *
 *   { "version": 1, "replicas": [R0, R1, ...],                  replicas per stage
 *     "iterations": [ [ [r, r, ...], ... ], ... ] }              [iteration][microbatch][hop]
 *
 * where hop indexes the microbatch's forward path (shared/schedule/paths.ts forwardPath; its
 * backward runs on the same replica, which holds the stash) and r is the replica's index in its
 * stage's group, 0..R-1. `checkAssignment` validates a stranger's record against the run.
 */
import { z } from 'zod';
import { forwardPath, swapCounter } from '../schedule/paths.js';

export const ASSIGNMENT_VERSION = 1;

export interface ReplicaAssignment {
  version: number;
  /** Replicas of each stage. */
  replicas: number[];
  /** [iteration][microbatch][hop] -> replica index within the hop's stage. */
  iterations: number[][][];
}

const MAX = 1 << 16;
const assignmentSchema = z.strictObject({
  version: z.literal(ASSIGNMENT_VERSION),
  replicas: z.array(z.number().int().min(1).max(1024)).min(1).max(1024),
  iterations: z.array(z.array(z.array(z.number().int().min(0).max(1023)).max(MAX)).max(MAX)).max(1 << 20),
});

export class AssignmentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AssignmentError';
  }
}

export interface AssignmentRun {
  stages: number;
  microbatches: number;
  swap: boolean;
}

/** The default: microbatch mb runs every hop on replica mb mod R of the hop's stage. */
export function roundRobinAssignment(run: AssignmentRun, replicas: number[], iterations: number): ReplicaAssignment {
  const rows = Array.from({ length: iterations }, (_, it) =>
    Array.from({ length: run.microbatches }, (_, mb) => forwardPath(swapCounter(it, run.microbatches, mb), run.stages, run.swap).map((h) => mb % replicas[h.stage]!)),
  );
  return { version: ASSIGNMENT_VERSION, replicas: [...replicas], iterations: rows };
}

/**
 * Parses and checks a record (JSON text or an object) against the run: replicas per stage,
 * microbatches per iteration, hops per microbatch path, replica indices in range, and at least
 * `iterations` iterations recorded. Throws AssignmentError saying what is wrong.
 */
export function checkAssignment(raw: unknown, run: AssignmentRun, iterations: number): ReplicaAssignment {
  let obj = raw;
  if (typeof raw === 'string') {
    try {
      obj = JSON.parse(raw);
    } catch (e) {
      throw new AssignmentError(`replica assignment is not JSON: ${(e as Error).message}`);
    }
  }
  const p = assignmentSchema.safeParse(obj);
  if (!p.success) throw new AssignmentError(`bad replica assignment: ${p.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const a = p.data;
  if (a.replicas.length !== run.stages) throw new AssignmentError(`replica assignment is for ${a.replicas.length} stages, the run has ${run.stages}`);
  if (a.iterations.length < iterations) throw new AssignmentError(`replica assignment records ${a.iterations.length} iterations, the run needs ${iterations}`);
  a.iterations.forEach((row, it) => {
    if (row.length !== run.microbatches) throw new AssignmentError(`iteration ${it} records ${row.length} microbatches, the run has ${run.microbatches}`);
    row.forEach((hops, mb) => {
      const path = forwardPath(swapCounter(it, run.microbatches, mb), run.stages, run.swap);
      if (hops.length !== path.length) throw new AssignmentError(`iteration ${it} microbatch ${mb} records ${hops.length} hops, its path has ${path.length}`);
      hops.forEach((r, h) => {
        const R = a.replicas[path[h]!.stage]!;
        if (r >= R) throw new AssignmentError(`iteration ${it} microbatch ${mb} hop ${h}: replica ${r} of stage ${path[h]!.stage}, which has ${R}`);
      });
    });
  });
  return a;
}
