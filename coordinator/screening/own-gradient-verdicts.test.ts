/**
 * The verdicts of OwnGradientAudit (own-gradient-audit.ts) over given norms, without a swarm: the
 * branches the live tests (own-gradient-audit.test.ts) do not reach on purpose.
 */
import { describe, it, expect } from 'vitest';
import { OwnGradientAudit } from './own-gradient-audit.js';
import { Probation } from './probation.js';
import type { Volunteer } from '../tabs/registry.js';
import type { StageTable } from '../placement/stage-table.js';
import type { EventLog } from '../record/events-log.js';
import type { SwarmMetrics } from '../record/metrics.js';

const tab = (id: string): Volunteer => ({ id, socket: { connected: true } }) as unknown as Volunteer;

function setup(groups: Volunteer[][], replicasDiffer = false) {
  const counts: Record<string, number> = {};
  const inc = (k: string) => (counts[k] = (counts[k] ?? 0) + 1);
  const metrics = {
    audits: { inc: (l: { verdict: string }) => inc(`audit:${l.verdict}`) },
    suspicions: { inc: (l: { rule: string }) => inc(`suspicion:${l.rule}`) },
    probation: { set: () => {} },
  } as unknown as SwarmMetrics;
  const events = { add: () => {} } as unknown as EventLog;
  const stages = { replicas: (s: number) => groups[s]! } as unknown as StageTable;
  const probation = new Probation(() => 0);
  const wanted: number[] = [];
  const audit = new OwnGradientAudit({ stages, probation, events, metrics, replicasDiffer, needSibling: (s) => wanted.push(s) });
  return { audit, counts, probation, wanted };
}

describe('own-gradient audit verdicts', () => {
  it('match within the tolerance, mismatch below it; only the suspect is left out of the retry', () => {
    const [a, b] = [tab('a'), tab('b')];
    const { audit, counts } = setup([[tab('x')], [a, b]]);
    expect(audit.suspect(7, 1, a, 1000, 'outlier')).toMatchObject({ outcome: 'drop' });
    expect(audit.excluded(a)).toBe(false); // not before the retry starts
    audit.beginAttempt(7);
    expect([audit.excluded(a), audit.excluded(b)]).toEqual([true, false]);
    expect(audit.check(7, [1, 1000 * (1 + 5e-3)])).toMatchObject({ verdict: 'match', stage: 1 });
    expect(audit.keepOutOfBaselines(7)).toBe(false); // verified honest: its norm is a baseline
    // The same outlier in a later attempt of the iteration is excused without another audit.
    expect(audit.suspect(7, 1, b, 1000, 'outlier')).toMatchObject({ outcome: 'accept' });
    audit.applied(7);
    audit.suspect(8, 1, a, 1000, 'outlier');
    audit.beginAttempt(8);
    expect(audit.check(8, [1, 900])).toMatchObject({ verdict: 'mismatch', suspect: a });
    expect(counts).toMatchObject({ 'audit:match': 1, 'audit:mismatch': 1, 'suspicion:own': 2 });
  });

  it('a retry further out than the suspect is no verdict on it: unverifiable, the retry judged afresh', () => {
    const [a, b] = [tab('a'), tab('b')];
    const { audit, counts, probation } = setup([[a, b]]);
    audit.suspect(3, 0, a, 100, 'outlier');
    audit.beginAttempt(3);
    expect(audit.check(3, [5000])).toMatchObject({ verdict: 'unverifiable' });
    expect(probation.isOn(a)).toBe(true);
    expect(audit.excluded(a)).toBe(false);
    // Judged afresh, the retry's outlier is a new suspicion (of its own largest replica).
    expect(audit.suspect(3, 0, b, 5000, 'outlier')).toMatchObject({ outcome: 'drop' });
    expect(counts).toMatchObject({ 'audit:unverifiable': 1, 'suspicion:own': 2 });
  });

  it('no sibling: unverifiable at once, a sibling asked for; none came: the retry reproducing it is accepted, kept out of the baselines', () => {
    const a = tab('a');
    const { audit, counts, wanted, probation } = setup([[a]]);
    expect(audit.suspect(5, 0, a, 100, 'outlier')).toMatchObject({ outcome: 'drop' });
    expect(wanted).toEqual([0]);
    expect(probation.isOn(a)).toBe(true);
    audit.beginAttempt(5);
    expect(audit.excluded(a)).toBe(false);
    expect(audit.check(5, [100])).toBeNull();
    expect(audit.suspect(5, 0, a, 100, 'outlier')).toMatchObject({ outcome: 'accept' });
    expect(audit.keepOutOfBaselines(5)).toBe(true);
    expect(counts).toMatchObject({ 'audit:unverifiable': 1, 'suspicion:own': 1 });
  });

  it('a sibling gone before the retry: unverifiable then, counted once', () => {
    const [a, b] = [tab('a'), tab('b')];
    const group = [a, b];
    const { audit, counts } = setup([group]);
    audit.suspect(2, 0, a, 100, 'outlier');
    group.pop();
    audit.beginAttempt(2);
    expect(audit.excluded(a)).toBe(false);
    audit.beginAttempt(2);
    expect(counts['audit:unverifiable']).toBe(1);
  });

  it('diloco: always unverifiable (replicas differ), never leaves anyone out', () => {
    const [a, b] = [tab('a'), tab('b')];
    const { audit, counts } = setup([[a, b]], true);
    expect(audit.suspect(4, 0, a, 100, 'outlier')).toMatchObject({ outcome: 'drop' });
    audit.beginAttempt(4);
    expect(audit.excluded(a)).toBe(false);
    expect(audit.suspect(4, 0, a, 100, 'outlier')).toMatchObject({ outcome: 'accept' });
    expect(counts).toMatchObject({ 'audit:unverifiable': 1 });
  });
});
