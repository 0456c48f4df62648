import { describe, expect, it } from 'vitest';
import { SkipPlanner } from './skip-planner.js';
import { parseRecordedSchedule } from '../../shared/schedule/recorded-schedule.js';
import { equalCosts } from '../../trainer/skip-schedule-source.js';
import { SkipRuleError } from '../../shared/schedule/skip-paths.js';

const opts = { nStages: 6, microbatches: 2, seed: 3, swap: false, skipRatio: 0.5, scheduler: 'random' as const };

describe('SkipPlanner (the coordinator side of SkipPipe paths)', () => {
  it('plans nothing with ratio 0, refuses ratios outside [0, 1)', () => {
    const p = new SkipPlanner({ ...opts, skipRatio: 0 });
    expect(p.active).toBe(false);
    expect(p.plan(0, [], () => equalCosts(6))).toBeNull();
    expect(p.canSkipVacant(2)).toBe(false);
    expect(() => new SkipPlanner({ ...opts, skipRatio: 1 })).toThrow(SkipRuleError);
  });

  it('avoids vacant stages, rotates in the stages the last applied iteration left out, and records what was applied', () => {
    for (const scheduler of ['random', 'collision'] as const) {
      const p = new SkipPlanner({ ...opts, scheduler });
      expect(p.canSkipVacant(0)).toBe(false);
      expect(p.canSkipVacant(5)).toBe(false);
      expect(p.canSkipVacant(3)).toBe(true);
      const seen = new Set<number>();
      for (let it = 0; it < 6; it++) {
        const plan = p.plan(it, [2], () => equalCosts(6))!;
        expect(plan.vacant).toEqual([2]);
        for (const path of plan.paths) {
          expect(path).not.toContain(2);
          expect(path[0]).toBe(0);
          expect(path[path.length - 1]).toBe(5);
        }
        p.commit(it, plan);
        for (const path of plan.paths) for (const s of path) seen.add(s);
      }
      // 3 open intermediates, 2 microbatches x 1 intermediate each: mustVisit brings every one in.
      expect([...seen].sort()).toEqual([0, 1, 3, 4, 5]);
      const rec = parseRecordedSchedule(JSON.stringify(p.recorded()));
      expect(rec.iterations).toHaveLength(6);
      expect(rec.iterations[0]!.vacant).toEqual([2]);
    }
  });

  it('records from iteration 0 up to the first iteration it did not apply', () => {
    const p = new SkipPlanner(opts);
    const a = p.plan(0, [], () => equalCosts(6))!;
    p.commit(0, a);
    p.commit(2, p.plan(2, [], () => equalCosts(6))!);
    expect(p.recorded().iterations).toEqual([a]);
  });

  it('saves each applied plan to its record and reloads them (rows that do not fit the run are left out)', () => {
    const rows: { iteration: number; plan: string }[] = [];
    const record = { save: (iteration: number, plan: string) => void rows.push({ iteration, plan }), load: () => [] };
    const a = new SkipPlanner(opts, record);
    for (let it = 0; it < 3; it++) a.commit(it, a.plan(it, [], () => equalCosts(6))!);
    expect(rows.map((r) => r.iteration)).toEqual([0, 1, 2]);
    const bad = [
      { iteration: 3, plan: 'not json' },
      { iteration: 4, plan: JSON.stringify({ vacant: [], paths: [[0, 9]] }) },
      { iteration: -1, plan: rows[0]!.plan },
    ];
    const b = new SkipPlanner(opts, { save: () => {}, load: () => [...rows, ...bad] });
    expect(b.recorded()).toEqual(a.recorded());
    expect(b.recorded().iterations).toHaveLength(3);
    // The next plan's mustVisit comes from the last reloaded plan, as it would have on the first coordinator.
    expect(b.plan(3, [], () => equalCosts(6))).toEqual(a.plan(3, [], () => equalCosts(6)));
  });

  it('collision-aware: the next iteration is planned ahead in a worker, the same plan the loop would make; a changed request plans on the loop', async () => {
    const o = { ...opts, microbatches: 4, scheduler: 'collision' as const };
    const ahead = new SkipPlanner(o);
    const loop = new SkipPlanner(o);
    try {
      const costs = () => equalCosts(6);
      const p0 = (await ahead.planned(0, [], costs))!;
      expect(p0).toEqual(loop.plan(0, [], costs));
      ahead.commit(0, p0);
      loop.commit(0, p0);
      const p1 = (await ahead.planned(1, [], costs))!;
      expect(ahead.aheadPlans).toBe(1);
      expect(p1).toEqual(loop.plan(1, [], costs));
      ahead.commit(1, p1);
      // Stage 2 emptied since: the request differs from the one planned ahead.
      const p2 = (await ahead.planned(2, [2], costs))!;
      expect(ahead.aheadPlans).toBe(1);
      expect(p2.vacant).toEqual([2]);
      expect(p2.paths.flat()).not.toContain(2);
    } finally {
      ahead.close();
    }
  });
});
