import { describe, it, expect } from 'vitest';
import { roundRobinAssignment, checkAssignment, AssignmentError } from './replica-assignment.js';

const run = { stages: 4, microbatches: 4, swap: true };

describe('replica assignment', () => {
  it('round robin: microbatch mb runs on replica mb mod R at every hop (swapped paths have 6 hops)', () => {
    const a = roundRobinAssignment(run, [2, 2, 1, 2], 2);
    expect(a.iterations[0]![0]).toEqual([0, 0, 0, 0]);
    expect(a.iterations[0]![1]).toEqual([1, 1, 1, 1, 0, 1]); // stages [0 embed][1][0][3][2 (one replica)][3 head]
    expect(a.iterations[1]![3]).toEqual([1, 1, 1, 1, 0, 1]);
    expect(checkAssignment(JSON.stringify(a), run, 2)).toEqual(a);
  });

  it('rejects records that do not fit the run, with what is wrong', () => {
    const a = roundRobinAssignment(run, [2, 2, 2, 2], 2);
    const e = (x: unknown, n = 2) => () => checkAssignment(x, run, n);
    expect(e('{nope')).toThrow(AssignmentError);
    expect(e({ ...a, version: 2 })).toThrow(/version/);
    expect(e(a, 3)).toThrow(/records 2 iterations, the run needs 3/);
    expect(e({ ...a, replicas: [2, 2] })).toThrow(/for 2 stages/);
    expect(e({ ...a, iterations: [a.iterations[0]!.slice(1), a.iterations[1]] })).toThrow(/3 microbatches/);
    const short = structuredClone(a);
    short.iterations[0]![1]!.pop();
    expect(e(short)).toThrow(/5 hops, its path has 6/);
    const high = structuredClone(a);
    high.iterations[1]![2]![1] = 2;
    expect(e(high)).toThrow(/replica 2 of stage 1, which has 2/);
    expect(e({ ...a, extra: 1 })).toThrow(AssignmentError);
    expect(e({ ...a, iterations: [[[[-1]]]] })).toThrow(AssignmentError);
  });
});
