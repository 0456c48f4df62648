/**
 * Evidence before conviction for a stage's own gradient outlier (own-gradient-audit.ts): the
 * iteration is retried without the suspect (its sibling runs the stage's hops) and the retry's
 * stage norm is the evidence. Live swarms of Node volunteers (tiny model, 2 stages).
 */
import { describe, it, expect } from 'vitest';
import type { PoisonedVolunteer } from '../../testing/poisoned-volunteer.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { startScreeningSwarm, tabsServing } from '../../testing/screening-swarm.js';
import { until } from '../../testing/until.js';

const harness = testSwarm();

const swarm = (maxReplicas: number, names: string[], history = 8, diloco = false) => startScreeningSwarm(harness, names, { maxReplicas, history, diloco });
const serving = (tabs: PoisonedVolunteer[], stage: number) => tabsServing(harness.coord!, tabs, stage);
const metric = async (re: RegExp) => Number((await harness.coord!.metrics.text()).match(re)?.[1] ?? 0);
const audits = (verdict: string) => metric(new RegExp(`swarm_screening_audits_total\\{verdict="${verdict}"\\} (\\d+)`));
const ownSuspicions = () => metric(/swarm_screening_suspicions_total\{rule="own"\} (\d+)/);
/** Waits until the audits with `verdict` reach `atLeast`. */
async function untilAudits(verdict: string, atLeast: number, ms = 120_000): Promise<void> {
  const t0 = Date.now();
  while ((await audits(verdict)) < atLeast) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${atLeast} audit(s) with verdict ${verdict}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const auditEvents = () => harness.coord!.events.list('run').filter((e) => e.data?.rule === 'own' && typeof e.data?.diff === 'number');

describe('own-gradient audit', () => {
  it('a liar inflating its own gradients on a two-replica stage is audited by the retry on its sibling (mismatch) and expelled', async () => {
    const tabs = await swarm(2, ['a', 'b', 'c', 'd']);
    const [liar, sibling] = serving(tabs, 1);
    const id = liar!.status().volunteerId;
    liar!.setPoison('huge-grads');
    await until(() => harness.coord!.events.list('quarantine').length >= 1, 'quarantine');
    const q = harness.coord!.events.list('quarantine');
    expect(q).toHaveLength(1);
    expect(q[0]!.data).toMatchObject({ stage: 1, volunteer: id });
    expect(q[0]!.message).toMatch(/own-gradient audit: the retry without it .* not reproduced/);
    expect(await ownSuspicions()).toBe(1);
    expect(await audits('mismatch')).toBe(1);
    const [e] = auditEvents();
    console.log(`liar: suspect norm ${e!.data!.suspectNorm}, retry ${e!.data!.retryNorm}, relative difference ${e!.data!.diff}`);
    expect(e!.data).toMatchObject({ verdict: 'mismatch' });
    const it1 = harness.coord!.scheduler.iteration;
    await until(() => harness.coord!.scheduler.iteration >= it1 + 2, 'training continues');
    expect(harness.coord!.stages.replicas(1).map((v) => v.id)).toEqual([sibling!.status().volunteerId]);
  });

  it('an honest outlier that every replica of the stage computes (its gradients legitimately 1e4x) is reproduced by the retry (match) and kept, and its level joins the baseline', async () => {
    const tabs = await swarm(2, ['a', 'b', 'c', 'd']);
    const stage1 = serving(tabs, 1);
    expect(stage1).toHaveLength(2);
    // Both replicas compute the same 1e4x gradient (as a loss scale on the stage would): an outlier
    // against the stage's history that a retry without either one reproduces.
    for (const t of stage1) t.setPoison('huge-grads');
    const it0 = harness.coord!.scheduler.iteration;
    await untilAudits('match', 3);
    await until(() => harness.coord!.scheduler.iteration >= it0 + 4, 'training continues');
    expect(harness.coord!.events.list('quarantine')).toEqual([]);
    expect(await audits('mismatch')).toBe(0);
    const diffs = auditEvents().map((e) => e.data!.diff as number);
    console.log(`honest reruns: relative differences ${diffs.map((d) => d.toExponential(2)).join(', ')}`);
    expect(Math.max(...diffs)).toBeLessThan(1e-3);
    expect(harness.coord!.stages.replicas(1)).toHaveLength(2);
    // Verified honest, the new level joins the stage's baseline: once its median has moved
    // (at most a window of 20), the level is no longer an outlier and costs no more retries.
    await until(() => harness.coord!.scheduler.iteration >= it0 + 24, 'the baseline moves', 120_000);
    const settled = await ownSuspicions();
    const it1 = harness.coord!.scheduler.iteration;
    await until(() => harness.coord!.scheduler.iteration >= it1 + 5, 'five more iterations');
    expect(await ownSuspicions()).toBe(settled);
  });

  it('a liar alone on its stage gets an audit sibling from the spares, is audited by the retry on it and expelled', async () => {
    const tabs = await swarm(1, ['a', 'b', 'spare']);
    const [liar] = serving(tabs, 1);
    const id = liar!.status().volunteerId;
    const it0 = harness.coord!.scheduler.iteration;
    liar!.setPoison('huge-grads');
    await until(() => harness.coord!.events.list('quarantine').length >= 1, 'quarantine');
    const q = harness.coord!.events.list('quarantine');
    expect(q).toHaveLength(1);
    expect(q[0]!.data).toMatchObject({ stage: 1, volunteer: id });
    expect(q[0]!.message).toMatch(/own-gradient audit/);
    expect(harness.coord!.events.list('run').some((e) => /joined stage 1 as an audit sibling/.test(e.message))).toBe(true);
    expect(await audits('unverifiable')).toBe(1);
    expect(await audits('mismatch')).toBe(1);
    expect(harness.coord!.scheduler.iteration).toBeLessThanOrEqual(it0 + 2);
  });

  it('a suspect alone on its stage with no spare and no surplus replica is on probation, never expelled', async () => {
    const tabs = await swarm(1, ['a', 'b']);
    const [suspect] = serving(tabs, 1);
    const id = suspect!.status().volunteerId;
    suspect!.setPoison('huge-grads');
    await until(() => harness.coord!.scheduler.probation.list().length >= 1, 'probation');
    expect(harness.coord!.scheduler.probation.list()).toMatchObject([{ volunteer: id, stage: 1 }]);
    expect(harness.coord!.events.list('run').some((e) => /own gradient of stage 1 .* is unverifiable: stage 1 has no sibling replica/.test(e.message))).toBe(true);
    const it0 = harness.coord!.scheduler.iteration;
    // The retry reproduces it: accepted unverified; training goes on with the tab.
    await until(() => harness.coord!.scheduler.iteration >= it0 + 3, 'training continues');
    expect(harness.coord!.events.list('run').some((e) => /reproduced in the retry, still unverifiable; accepted/.test(e.message))).toBe(true);
    expect(harness.coord!.events.list('quarantine')).toEqual([]);
    expect(harness.coord!.stages.owner(1)!.id).toBe(id);
    expect(await audits('mismatch')).toBe(0);
  });

  it('diloco: an own outlier is unverifiable (replicas differ between syncs): probation, never expelled, its retries accepted unverified', async () => {
    const tabs = await swarm(2, ['a', 'b', 'c', 'd'], 8, true);
    const [liar] = serving(tabs, 1);
    const id = liar!.status().volunteerId;
    liar!.setPoison('huge-grads');
    await until(() => harness.coord!.scheduler.probation.list().length >= 1, 'probation');
    expect(harness.coord!.events.list('run').some((e) => /is unverifiable: diloco replicas hold their own weights/.test(e.message))).toBe(true);
    const syncs = harness.coord!.scheduler.diloco!.count;
    await until(() => harness.coord!.scheduler.diloco!.count >= syncs + 1, 'the next sync');
    // Every other attempt applied to its own replica, clipped (so its pseudo-gradient need not be an
    // outlier at the sync); it syncs with its group, on probation, not expelled.
    expect(harness.coord!.events.list('run').some((e) => /reproduced in the retry, still unverifiable; accepted/.test(e.message))).toBe(true);
    expect(harness.coord!.events.list('quarantine')).toEqual([]);
    expect(harness.coord!.stages.replicas(1).map((v) => v.id)).toContain(id);
    expect(await audits('mismatch')).toBe(0);
  });
});
