import { describe, it, expect } from 'vitest';
import { decideResume, type ResumeClaim } from './resume.js';
import type { Volunteer } from '../tabs/registry.js';

const claim = (stage: number, iteration: number): ResumeClaim => ({ volunteer: { id: `v${stage}` } as Volunteer, stage, iteration });

describe('decideResume', () => {
  it('keeps every tab that agrees on the step count', () => {
    const d = decideResume(4, [claim(0, 7), claim(1, 7), claim(2, 7), claim(3, 7)]);
    expect(d).toMatchObject({ iteration: 7, rebuild: [] });
    expect(d.kept.map((c) => c.stage)).toEqual([0, 1, 2, 3]);
  });
  it('rebuilds missing stages and stages one step apart (majority wins, ties go to the highest)', () => {
    expect(decideResume(4, [claim(0, 8), claim(1, 8), claim(2, 7)])).toMatchObject({ iteration: 8, rebuild: [2, 3] });
    expect(decideResume(4, [claim(0, 8), claim(1, 7)])).toMatchObject({ iteration: 8, rebuild: [1, 2, 3] });
  });
  it('keeps several replicas of one stage', () => {
    const d = decideResume(2, [claim(0, 5), claim(0, 5), claim(1, 5), claim(1, 4)]);
    expect(d).toMatchObject({ iteration: 5, rebuild: [] });
    expect(d.kept.map((c) => c.stage)).toEqual([0, 0, 1]);
  });
  it('no tab back: nothing to resume', () => {
    expect(decideResume(4, [])).toEqual({ iteration: null, kept: [], rebuild: [] });
  });
});
