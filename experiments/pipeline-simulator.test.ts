import { describe, expect, it } from 'vitest';
import { backwardPath, forwardPath } from '../shared/schedule/paths';
import {
  bubbleFraction,
  idealIterationUnits,
  simulatePipeline,
  type SchedulePolicy,
  type ScheduledTask,
  type SimulationResult,
} from './pipeline-simulator';

const POLICIES: SchedulePolicy[] = ['gpipe', '1f1b'];
const RANGE = [1, 2, 3, 4, 5, 6, 7, 8];

/** Every task with the stage that ran it. */
function allTasks(result: SimulationResult): (ScheduledTask & { stage: number })[] {
  return result.stages.flatMap((tasks, stage) => tasks.map((t) => ({ ...t, stage })));
}

/** Check all invariants of one simulated iteration. */
function checkSchedule(result: SimulationResult, nStages: number, nMicrobatches: number, swap: boolean): void {
  const tasks = allTasks(result);
  const byKey = new Map<string, ScheduledTask & { stage: number }>();

  // Every (mb, dir, hop) runs exactly once, on the stage its path names.
  for (const task of tasks) {
    const key = `${task.mb}/${task.dir}/${task.hopIndex}`;
    expect(byKey.has(key), `duplicate task ${key}`).toBe(false);
    byKey.set(key, task);
    const path = task.dir === 'F' ? forwardPath(task.mb, nStages, swap) : backwardPath(task.mb, nStages, swap);
    expect(path[task.hopIndex].stage).toBe(task.stage);
  }
  let expected = 0;
  for (let mb = 0; mb < nMicrobatches; mb++) expected += 2 * forwardPath(mb, nStages, swap).length;
  expect(byKey.size).toBe(expected);

  for (let mb = 0; mb < nMicrobatches; mb++) {
    const n = forwardPath(mb, nStages, swap).length;
    const chain = [
      ...Array.from({ length: n }, (_, i) => byKey.get(`${mb}/F/${i}`)!),
      ...Array.from({ length: n }, (_, i) => byKey.get(`${mb}/B/${i}`)!),
    ];
    // Each task starts after the previous task of its microbatch finished.
    for (let i = 1; i < chain.length; i++) expect(chain[i].start).toBeGreaterThanOrEqual(chain[i - 1].start + 1);
    // On every stage, the microbatch's forward work precedes its backward work.
    for (let stage = 0; stage < nStages; stage++) {
      const onStage = chain.filter((t) => t.stage === stage);
      const lastF = Math.max(...onStage.filter((t) => t.dir === 'F').map((t) => t.start));
      const firstB = Math.min(...onStage.filter((t) => t.dir === 'B').map((t) => t.start));
      expect(lastF).toBeLessThan(firstB);
    }
  }

  // A stage runs one task per time unit; lists are in time order.
  for (const stageTasks of result.stages) {
    for (let i = 1; i < stageTasks.length; i++) expect(stageTasks[i].start).toBeGreaterThan(stageTasks[i - 1].start);
  }
  expect(result.makespan).toBe(Math.max(...tasks.map((t) => t.start)) + 1);
}

/** Most microbatches simultaneously between their first forward start and last backward finish. */
function peakInFlight(result: SimulationResult, nMicrobatches: number): number {
  const tasks = allTasks(result);
  let peak = 0;
  for (let t = 0; t < result.makespan; t++) {
    let count = 0;
    for (let mb = 0; mb < nMicrobatches; mb++) {
      const starts = tasks.filter((x) => x.mb === mb).map((x) => x.start);
      if (Math.min(...starts) <= t && t <= Math.max(...starts)) count++;
    }
    peak = Math.max(peak, count);
  }
  return peak;
}

describe('simulatePipeline', () => {
  for (const policy of POLICIES) {
    for (const swap of [false, true]) {
      it(`${policy} swap=${swap}: all M, S in 1..8 complete with valid schedules`, () => {
        for (const nStages of RANGE) {
          for (const nMicrobatches of RANGE) {
            const result = simulatePipeline({ nStages, nMicrobatches, policy, swap });
            checkSchedule(result, nStages, nMicrobatches, swap);
            if (!swap) expect(result.makespan).toBe(idealIterationUnits(nMicrobatches, nStages));
            else expect(result.makespan).toBeGreaterThanOrEqual(idealIterationUnits(nMicrobatches, nStages));
          }
        }
      });
    }
  }

  it('1F1B never exceeds maxInFlight', () => {
    for (const swap of [false, true]) {
      for (const nStages of RANGE) {
        for (const nMicrobatches of RANGE) {
          for (const maxInFlight of [1, 2, nStages, undefined]) {
            const result = simulatePipeline({ nStages, nMicrobatches, policy: '1f1b', swap, maxInFlight });
            checkSchedule(result, nStages, nMicrobatches, swap);
            const limit = maxInFlight ?? nStages;
            expect(result.maxInFlightObserved).toBeLessThanOrEqual(limit);
            expect(peakInFlight(result, nMicrobatches)).toBeLessThanOrEqual(limit);
          }
        }
      }
    }
  });

  it('GPipe runs all forwards on a stage before any backward (no swap)', () => {
    const result = simulatePipeline({ nStages: 4, nMicrobatches: 6, policy: 'gpipe', swap: false });
    for (const tasks of result.stages) {
      const dirs = tasks.map((t) => t.dir).join('');
      expect(dirs).toBe('F'.repeat(6) + 'B'.repeat(6));
    }
  });

  it('1F1B interleaves on the last stage', () => {
    const result = simulatePipeline({ nStages: 4, nMicrobatches: 4, policy: '1f1b', swap: false });
    expect(result.stages[3].map((t) => `${t.dir}${t.mb}`)).toEqual(['F0', 'B0', 'F1', 'B1', 'F2', 'B2', 'F3', 'B3']);
  });

  it('1F1B with maxInFlight=1 serialises microbatches', () => {
    const result = simulatePipeline({ nStages: 3, nMicrobatches: 2, policy: '1f1b', swap: false, maxInFlight: 1 });
    expect(result.makespan).toBe(2 * 2 * 3);
    expect(result.maxInFlightObserved).toBe(1);
  });

  it('reports the bubble fraction', () => {
    const result = simulatePipeline({ nStages: 1, nMicrobatches: 3, policy: 'gpipe', swap: false });
    expect(bubbleFraction(result)).toBe(0);
    const piped = simulatePipeline({ nStages: 4, nMicrobatches: 4, policy: 'gpipe', swap: false });
    expect(bubbleFraction(piped)).toBeCloseTo(1 - 32 / (4 * 14));
  });

  it('rejects invalid options', () => {
    expect(() => simulatePipeline({ nStages: 0, nMicrobatches: 1, policy: 'gpipe', swap: false })).toThrow(RangeError);
    expect(() => simulatePipeline({ nStages: 2, nMicrobatches: 0, policy: 'gpipe', swap: false })).toThrow(RangeError);
    expect(() =>
      simulatePipeline({ nStages: 2, nMicrobatches: 2, policy: '1f1b', swap: false, maxInFlight: 0 }),
    ).toThrow(RangeError);
  });
});
