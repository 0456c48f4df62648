import { describe, expect, it } from 'vitest';
import { fmtSkip, stageSkips } from './skip-status';

describe('skip status on the pages', () => {
  it('says per stage why it ran no microbatch: no volunteer, or the skip ratio', () => {
    expect(stageSkips({ ratio: 0.25, vacant: [2], visits: [3, 0, 0, 3, 3] }, 5)).toEqual([
      { stage: 0, visits: 3, skipped: null },
      { stage: 1, visits: 0, skipped: 'ratio' },
      { stage: 2, visits: 0, skipped: 'vacant' },
      { stage: 3, visits: 3, skipped: null },
      { stage: 4, visits: 3, skipped: null },
    ]);
    expect(stageSkips({ ratio: 0.25, vacant: [], visits: null }, 2)).toEqual([
      { stage: 0, visits: null, skipped: null },
      { stage: 1, visits: null, skipped: null },
    ]);
  });

  it('formats one line for the volunteer page', () => {
    expect(fmtSkip(undefined)).toBe('');
    expect(fmtSkip({ ratio: 0.25, vacant: [], visits: [2, 1, 1, 2] })).toBe('partial pipelines: each microbatch skips about 25% of the stages');
    expect(fmtSkip({ ratio: 0.33, vacant: [1], visits: null })).toBe('partial pipelines: each microbatch skips about 33% of the stages; training without stage 1 until a volunteer takes it');
    expect(fmtSkip({ ratio: 0.5, vacant: [1, 3], visits: null })).toMatch(/without stages 1, 3 until volunteers take them$/);
  });
});

describe('stage lists typed by the operator', () => {
  it('parses comma-separated stage numbers and refuses anything else', async () => {
    const { parseStages } = await import('./skip-status');
    expect(parseStages('0, 2,3')).toEqual([0, 2, 3]);
    expect(parseStages('')).toBeNull();
    expect(parseStages('0,,3')).toBeNull();
    expect(parseStages('0,-1')).toBeNull();
    expect(parseStages('a')).toBeNull();
  });
});
