import { describe, it, expect } from 'vitest';
import { RunStore } from './store.js';
import { exportAssignment } from './assignment-export.js';
import { checkAssignment } from '../../shared/dp/replica-assignment.js';

describe('exportAssignment', () => {
  const run = { stages: 2, microbatches: 2, swap: false };
  const row = (iteration: number, replicas: number[] | null, hops = [[0, 1], [1, 0]]) => ({ iteration, replicas, hops });

  it('stores rows with the run and exports the prefix a fixed-R reference can replay', () => {
    const store = new RunStore(null);
    store.startRun('r1', {});
    store.startRun('r2', {});
    for (const r of [row(0, [2, 2]), row(1, [2, 2], [[1, 1], [0, 0]]), row(2, [2, 2]), row(3, [2, 3])]) store.addAssignment('r1', r);
    store.addAssignment('r2', row(0, [1, 1], [[0, 0], [0, 0]]));
    store.addAssignment('r1', row(2, [2, 2], [[1, 0], [0, 1]])); // a re-run overwrites
    const e = exportAssignment(store.assignments('r1'));
    expect(e.record.replicas).toEqual([2, 2]);
    expect(e.record.iterations).toEqual([[[0, 1], [1, 0]], [[1, 1], [0, 0]], [[1, 0], [0, 1]]]);
    expect(e.stopped).toMatch(/group sizes changed at iteration 3/);
    // What train:local --assignment accepts (the JSON round trip included).
    expect(checkAssignment(JSON.stringify(e.record), run, 3).iterations.length).toBe(3);
    expect(exportAssignment(store.assignments('r2')).record.replicas).toEqual([1, 1]);
    store.close();
  });

  it('stops at a gap, at a group change inside an iteration, and exports nothing for a run without iteration 0', () => {
    expect(exportAssignment([row(0, [2, 2]), row(2, [2, 2])])).toMatchObject({ record: { iterations: [[[0, 1], [1, 0]]] }, stopped: expect.stringMatching(/iteration 1 is not stored/) });
    expect(exportAssignment([row(0, [2, 2]), row(1, null)]).stopped).toMatch(/changed during iteration 1/);
    expect(exportAssignment([row(5, [2, 2])]).record).toMatchObject({ replicas: [], iterations: [] });
  });
});
