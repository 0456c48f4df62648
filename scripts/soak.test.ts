import { describe, it, expect } from 'vitest';
import { runSoak } from './soak.js';

describe('soak (short CI variant of npm run soak)', () => {
  it('50 churning volunteers for 25 s: no stall, bounded memory', async () => {
    const lines: string[] = [];
    const r = await runSoak({ volunteers: 50, seconds: 25, sampleSeconds: 2.5, seed: 7, log: (l) => lines.push(l) });
    console.log(lines.join('\n'));
    expect(r.joins).toBeGreaterThan(50);
    expect(r.leaves).toBeGreaterThan(10);
    expect(r.samples.length).toBeGreaterThanOrEqual(8);
    expect(r.failures).toEqual([]);
    expect(r.samples[r.samples.length - 1]!.iteration).toBeGreaterThan(r.samples[0]!.iteration);
  });
});
