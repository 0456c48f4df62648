import { describe, it, expect } from 'vitest';
import { parseStudyArgs, DEFAULT_FORK, QUICK_FORK } from './cli.js';

describe('npm run study arguments', () => {
  it('defaults to the paper-like size with at least 6 block stages, --quick to the small case', () => {
    const d = parseStudyArgs([])!;
    expect(d.fork).toEqual(DEFAULT_FORK);
    expect(d.fork.stages).toBeGreaterThanOrEqual(6);
    expect(d.fork.edge).toBe('reinit');
    expect(d.validation?.strategies).toEqual(['checkfree', 'checkfree+', 'none', 'checkpoint', 'redundant']);
    const q = parseStudyArgs(['--quick', '--no-swarm', '--edge', 'copy', '--workers', '1'])!;
    expect(q.fork).toEqual({ ...QUICK_FORK, edge: 'copy' });
    expect(q.validation).toBeNull();
    expect(q.workers).toBe(1);
    expect(q.out).toMatch(/results\/study-quick$/);
  });

  it('prints help and refuses bad values', () => {
    expect(parseStudyArgs(['--help'])).toBeNull();
    expect(() => parseStudyArgs(['--edge', 'clone'])).toThrow(/unknown --edge "clone"/);
    expect(() => parseStudyArgs(['--workers', '0'])).toThrow(/--workers must be an integer >= 1/);
    expect(() => parseStudyArgs(['--bogus'])).toThrow();
  });
});
