/**
 * Evidence before conviction (issue 22): a relay-rule suspicion is audited by re-running the
 * suspect hop on a sibling replica (hop-audit.ts, suspect-review.ts) before anyone is expelled.
 * Live swarms of Node volunteers (tiny model, 2 stages).
 */
import { describe, it, expect } from 'vitest';
import type { PoisonedVolunteer } from '../../testing/poisoned-volunteer.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { startScreeningSwarm, tabsServing } from '../../testing/screening-swarm.js';
import { until } from '../../testing/until.js';

const harness = testSwarm();

/** 2 stages; `maxReplicas` 2 gives each stage a sibling (4 tabs), 1 leaves every stage alone. */
const swarm = (maxReplicas: number, names: string[], history = 8) => startScreeningSwarm(harness, names, { maxReplicas, history });
const replicasOf = (tabs: PoisonedVolunteer[], stage: number) => tabsServing(harness.coord!, tabs, stage);

/** Waits until the metric matched by `re` reaches `at_least`. */
async function untilMetric(re: RegExp, atLeast: number, what: string, ms = 120_000): Promise<void> {
  const t0 = Date.now();
  while ((await metric(re)) < atLeast) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const metric = async (re: RegExp) => Number((await harness.coord!.metrics.text()).match(re)?.[1] ?? 0);

describe('evidence before conviction', () => {
  it('a liar inflating the activations it relays is verified by its sibling re-running the hop, and expelled', async () => {
    const tabs = await swarm(2, ['a', 'b', 'c', 'd']);
    const [liar] = replicasOf(tabs, 0);
    liar!.setPoison('inflate-sent-acts');
    await until(() => harness.coord!.events.list('quarantine').length >= 1, 'quarantine');
    const q = harness.coord!.events.list('quarantine');
    expect(q).toHaveLength(1);
    expect(q[0]!.data).toMatchObject({ stage: 0, volunteer: liar!.status().volunteerId });
    expect(q[0]!.message).toMatch(/relayed activations .*audit: the sibling's re-run differs/);
    expect(await metric(/swarm_screening_audits_total\{verdict="mismatch"\} (\d+)/)).toBe(1);
    const it0 = harness.coord!.scheduler.iteration;
    await until(() => harness.coord!.scheduler.iteration >= it0 + 2, 'training continues');
    expect(harness.coord!.events.list('quarantine')).toHaveLength(1);
  });

  it('a liar inflating the gradients it relays upstream is verified (forward and backward re-run on its sibling) and expelled', async () => {
    const tabs = await swarm(2, ['a', 'b', 'c', 'd']);
    const [liar] = replicasOf(tabs, 1);
    liar!.setPoison('inflate-sent-grads');
    await until(() => harness.coord!.events.list('quarantine').length >= 1, 'quarantine');
    const q = harness.coord!.events.list('quarantine');
    expect(q).toHaveLength(1);
    expect(q[0]!.data).toMatchObject({ stage: 1, volunteer: liar!.status().volunteerId });
    expect(q[0]!.message).toMatch(/relayed gradients .*audit: the sibling's re-run differs/);
    expect(await metric(/swarm_screening_audits_total\{verdict="mismatch"\} (\d+)/)).toBe(1);
  });

  it('a suspected tab whose jump its sibling reproduces is kept, and training goes on', async () => {
    const tabs = await swarm(2, ['a', 'b', 'c', 'd']);
    const stage0 = replicasOf(tabs, 0);
    expect(stage0).toHaveLength(2);
    // Both replicas now compute 1e4x larger activations (as scaled weights would): a jump against
    // their history that a re-run on the sibling reproduces.
    for (const t of stage0) t.setPoison('amplify-acts');
    const it0 = harness.coord!.scheduler.iteration;
    await untilMetric(/swarm_screening_audits_total\{verdict="match"\} (\d+)/, 1, 'an audit that matched');
    await until(() => harness.coord!.scheduler.iteration >= it0 + 5, 'training continues');
    expect(harness.coord!.events.list('quarantine')).toEqual([]);
    expect(harness.coord!.events.list('run').some((e) => /audited on .*matches.*kept/.test(e.message))).toBe(true);
    expect(await metric(/swarm_screening_audits_total\{verdict="mismatch"\} (\d+)/)).toBe(0);
  });

  it('an unverifiable suspicion (no sibling, no spare) drops the iteration and puts the tab on probation, never quarantines it', async () => {
    // No spare and no surplus replica: nobody can become its audit sibling (audit-siblings.test.ts has a spare).
    const tabs = await swarm(1, ['a', 'b']);
    const [suspect] = replicasOf(tabs, 0);
    const id = suspect!.status().volunteerId;
    suspect!.setPoison('inflate-sent-acts');
    await untilMetric(/swarm_screening_probation (\d+)/, 1, 'probation');
    expect(harness.coord!.scheduler.probation.list()).toMatchObject([{ volunteer: id, stage: 0 }]);
    expect(await metric(/swarm_screening_audits_total\{verdict="unverifiable"\} (\d+)/)).toBeGreaterThanOrEqual(1);
    expect(harness.coord!.events.list('run').some((e) => /is unverifiable: stage 0 has no sibling replica; its iteration is dropped and it is on probation/.test(e.message))).toBe(true);
    const it0 = harness.coord!.scheduler.iteration;
    await until(() => harness.coord!.scheduler.iteration >= it0 + 3, 'training continues');
    expect(harness.coord!.events.list('quarantine')).toEqual([]);
    expect(harness.coord!.stages.owner(0)!.id).toBe(id);
    expect(harness.coord!.events.list('run').some((e) => /stage 0 has no spare and no surplus replica to audit/.test(e.message))).toBe(true);
  });
});
