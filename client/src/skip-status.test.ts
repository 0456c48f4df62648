import { describe, expect, it } from 'vitest';
import { exportLinkPath, fmtSkip, servedSubset, stageSkips } from './skip-status';

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

  it('builds the export link for the full model or a subset of stages, and refuses other text', () => {
    expect(exportLinkPath('')).toEqual({ path: '/api/operator/export-link' });
    expect(exportLinkPath(' 0, 2,3 ')).toEqual({ path: '/api/operator/export-link?stages=0,2,3' });
    expect(exportLinkPath('0;2')).toHaveProperty('error');
    expect(exportLinkPath('0,-1')).toHaveProperty('error');
  });

  it('samples through the served stages while an intermediate one is vacant, never without the first or last', () => {
    const st = (states: string[]) => states.map((state, stage) => ({ stage, state }));
    expect(servedSubset(st(['training', 'training', 'training']))).toEqual([0, 1, 2]);
    expect(servedSubset(st(['training', 'waiting', 'training', 'rebuilding', 'training']))).toEqual([0, 2, 4]);
    expect(servedSubset(st(['waiting', 'training', 'training']))).toBeNull();
    expect(servedSubset(st(['training', 'training', 'rebuilding']))).toBeNull();
    expect(servedSubset([])).toBeNull();
  });
});
