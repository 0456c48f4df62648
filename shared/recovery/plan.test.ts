import { describe, it, expect } from 'vitest';
import { EDGE_POLICIES, planRecovery, type EdgePolicy, type RecoveryMethod } from './plan.js';
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
const copy = (from: number, replica: number | null, part: 'embed' | 'head' | null): Expected => ({
  method: 'copy',
  blockSources: [from],
  replicaSource: replica,
  replicaPart: part,
  fallback: false,
});

/** The expected plan for every strategy, lost stage and stage count, written out rule by rule. */
function expected(strategy: RecoveryStrategy, lost: number, S: number, edgePolicy: EdgePolicy = 'reinit'): Expected {
  if (strategy === 'checkpoint' || strategy === 'redundant' || strategy === 'cpsr' || strategy === 'stage-restore') return { method: strategy, blockSources: [], replicaSource: null, fallback: false };
  if (strategy === 'none') return reinit(false);
  if (S === 1) return reinit(true);
  // checkfree+: the inner members of the swapped pairs copy their partner (the edge stage).
  if (strategy === 'checkfree+' && S >= 4 && lost === 1) return copy(0, null, null);
  if (strategy === 'checkfree+' && S >= 4 && lost === S - 2) return copy(S - 1, null, null);
  const edge = lost === 0 || lost === S - 1;
  if (!edge) return avg(lost);
  if (strategy === 'checkfree' && edgePolicy === 'reinit') return reinit(true);
  if (lost === 0) return copy(1, 1, 'embed');
  return copy(S - 2, S - 2, 'head');
}

describe('planRecovery', () => {
  const rows: [RecoveryStrategy, number, number, EdgePolicy][] = [];
  for (const edge of EDGE_POLICIES) {
    for (const strategy of RECOVERY_STRATEGIES) for (let S = 1; S <= 6; S++) for (let lost = 0; lost < S; lost++) rows.push([strategy, lost, S, edge]);
  }

  it.each(rows)('%s, lost stage %i of %i, edge %s', (strategy, lost, S, edge) => {
    const p = planRecovery(strategy, lost, S, { edge });
    expect(p).toMatchObject({ strategy, lost, nStages: S, ...expected(strategy, lost, S, edge) });
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

  it('checkfree+ copies the partner for both members of each swapped pair and averages the rest (S = 6)', () => {
    const methods = [0, 1, 2, 3, 4, 5].map((lost) => planRecovery('checkfree+', lost, 6));
    expect(methods.map((p) => p.method)).toEqual(['copy', 'copy', 'average', 'average', 'copy', 'copy']);
    expect(methods.map((p) => p.blockSources)).toEqual([[1], [0], [1, 3], [2, 4], [5], [4]]);
    expect(methods[1]).toMatchObject({ replicaSource: null, replicaPart: null });
  });

  it('plain checkfree at the edges: re-init by default (the paper), copy with edge copy (the reference script)', () => {
    expect(planRecovery('checkfree', 0, 6)).toMatchObject({ method: 'reinit', fallback: true });
    expect(planRecovery('checkfree', 5, 6, { edge: 'copy' })).toMatchObject({ method: 'copy', blockSources: [4], replicaSource: 4, replicaPart: 'head', fallback: false });
    expect(planRecovery('checkfree', 1, 6, { edge: 'copy' })).toMatchObject({ method: 'average', blockSources: [0, 2] });
    expect(() => planRecovery('checkfree', 0, 6, { edge: 'clone' as EdgePolicy })).toThrow(/unknown edge policy "clone"/);
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
