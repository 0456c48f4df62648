import { describe, it, expect } from 'vitest';
import { planRecovery, type RecoveryMethod } from './plan.js';
import { replicaHolders } from './replicas.js';
import { RECOVERY_STRATEGIES, type RecoveryStrategy } from '../run-settings.js';

interface Expected {
  method: RecoveryMethod;
  blockSources: number[];
  replicaSource: number | null;
  replicaPart?: 'embed' | 'head' | null;
  fallback: boolean;
}

const reinit = (fallback: boolean): Expected => ({ method: 'reinit', blockSources: [], replicaSource: null, fallback });
const avg = (i: number): Expected => ({ method: 'average', blockSources: [i - 1, i + 1], replicaSource: null, replicaPart: null, fallback: false });
const copy = (from: number, replica: number, part: 'embed' | 'head'): Expected => ({
  method: 'copy',
  blockSources: [from],
  replicaSource: replica,
  replicaPart: part,
  fallback: false,
});

/** The expected plan for every strategy, lost stage and stage count, written out rule by rule. */
function expected(strategy: RecoveryStrategy, lost: number, S: number): Expected {
  if (strategy === 'checkpoint' || strategy === 'redundant') return { method: strategy, blockSources: [], replicaSource: null, fallback: false };
  if (strategy === 'none') return reinit(false);
  if (S === 1) return reinit(true);
  const edge = lost === 0 || lost === S - 1;
  if (!edge) return avg(lost);
  if (strategy === 'checkfree') return reinit(true);
  if (lost === 0) return copy(1, 1, 'embed');
  return copy(S - 2, S - 2, 'head');
}

describe('planRecovery', () => {
  const rows: [RecoveryStrategy, number, number][] = [];
  for (const strategy of RECOVERY_STRATEGIES) for (let S = 1; S <= 6; S++) for (let lost = 0; lost < S; lost++) rows.push([strategy, lost, S]);

  it.each(rows)('%s, lost stage %i of %i', (strategy, lost, S) => {
    const p = planRecovery(strategy, lost, S);
    expect(p).toMatchObject({ strategy, lost, nStages: S, ...expected(strategy, lost, S) });
    expect(p.description).toContain(`stage ${lost}`);
    // A replica always comes from the stage that holds it.
    if (p.replicaPart) expect(p.replicaSource).toBe(replicaHolders(S)[p.replicaPart]);
    // Sources are other, existing stages.
    for (const s of p.blockSources) expect(s >= 0 && s < S && s !== lost).toBe(true);
  });

  it('spells out the 2-stage case: each stage copies the other and takes the replica it holds', () => {
    expect(planRecovery('checkfree+', 0, 2)).toMatchObject({ method: 'copy', blockSources: [1], replicaSource: 1, replicaPart: 'embed' });
    expect(planRecovery('checkfree+', 1, 2)).toMatchObject({ method: 'copy', blockSources: [0], replicaSource: 0, replicaPart: 'head' });
    expect(planRecovery('checkfree', 0, 2)).toMatchObject({ method: 'reinit', fallback: true });
    expect(planRecovery('checkfree', 1, 2)).toMatchObject({ method: 'reinit', fallback: true });
  });

  it('spells out the 3-stage case: the middle stage averages, the edges copy the middle', () => {
    for (const strategy of ['checkfree', 'checkfree+'] as const) {
      expect(planRecovery(strategy, 1, 3)).toMatchObject({ method: 'average', blockSources: [0, 2] });
    }
    expect(planRecovery('checkfree+', 0, 3)).toMatchObject({ method: 'copy', blockSources: [1], replicaSource: 1, replicaPart: 'embed' });
    expect(planRecovery('checkfree+', 2, 3)).toMatchObject({ method: 'copy', blockSources: [1], replicaSource: 1, replicaPart: 'head' });
  });

  it('describes fallbacks', () => {
    expect(planRecovery('checkfree', 0, 4).description).toMatch(/re-init from seed.*first stage/);
    expect(planRecovery('checkfree+', 0, 1).description).toMatch(/at least 2 stages/);
  });

  it('rejects bad arguments', () => {
    expect(() => planRecovery('checkfree', 4, 4)).toThrow(/out of range 0\.\.3/);
    expect(() => planRecovery('checkfree', -1, 4)).toThrow(RangeError);
    expect(() => planRecovery('checkfree', 0, 0)).toThrow(/nStages/);
    expect(() => planRecovery('magic' as RecoveryStrategy, 0, 4)).toThrow(/unknown recovery strategy "magic"/);
  });
});
