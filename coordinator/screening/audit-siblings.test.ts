/**
 * Audit siblings (issue 22): a suspicion on a stage served by one tab is unverifiable, so the
 * stage gets a sibling from the spares at once (audit-siblings.ts) and the retry's suspicion is
 * audited on it. Live swarms of Node volunteers (tiny model, 2 stages, `maxReplicas` 1: every
 * stage alone, the third tab a spare).
 */
import { describe, it, expect } from 'vitest';
import type { PoisonedVolunteer } from '../../testing/poisoned-volunteer.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { startScreeningSwarm, tabsServing } from '../../testing/screening-swarm.js';
import { until } from '../../testing/until.js';

const harness = testSwarm();

/** `maxReplicas` 1: two tabs serve, the third is a spare; 2: the third is a surplus replica of one stage. */
const swarm = (names: string[], history = 8, maxReplicas = 1) => startScreeningSwarm(harness, names, { maxReplicas, history });
const serving = (tabs: PoisonedVolunteer[], stage: number) => tabsServing(harness.coord!, tabs, stage);
const spareOf = (tabs: PoisonedVolunteer[]) => tabs.filter((t) => !harness.coord!.stages.allReplicas().some((v) => v.id === t.status().volunteerId));

const metric = async (re: RegExp) => Number((await harness.coord!.metrics.text()).match(re)?.[1] ?? 0);
const siblingEvents = () => harness.coord!.events.list('run').filter((e) => /as an audit sibling/.test(e.message));

describe('audit siblings', () => {
  it('a persistent liar alone on its stage gets a sibling from the spares, is verified on it and expelled within a few iterations', async () => {
    const tabs = await swarm(['a', 'b', 'spare']);
    const [liar] = serving(tabs, 0);
    const [spare] = spareOf(tabs);
    expect(spare).toBeDefined();
    const id = liar!.status().volunteerId;
    const it0 = harness.coord!.scheduler.iteration;
    liar!.setPoison('inflate-sent-acts');
    await until(() => harness.coord!.events.list('quarantine').length >= 1, 'quarantine');
    const q = harness.coord!.events.list('quarantine');
    expect(q).toHaveLength(1);
    expect(q[0]!.data).toMatchObject({ stage: 0, volunteer: id });
    expect(q[0]!.message).toMatch(/relayed activations .*audit: the sibling's re-run differs/);
    // First suspicion unverifiable (no sibling), then the spare joined, then the retry convicted.
    expect(siblingEvents()).toHaveLength(1);
    expect(siblingEvents()[0]!.data).toMatchObject({ stage: 0, suspect: id, volunteer: spare!.status().volunteerId });
    expect(await metric(/swarm_screening_audits_total\{verdict="unverifiable"\} (\d+)/)).toBe(1);
    expect(await metric(/swarm_screening_audits_total\{verdict="mismatch"\} (\d+)/)).toBe(1);
    expect(harness.coord!.scheduler.iteration).toBeLessThanOrEqual(it0 + 3);
    // The sibling serves the stage on; training goes on without the liar.
    expect(harness.coord!.stages.owner(0)!.id).toBe(spare!.status().volunteerId);
    const it1 = harness.coord!.scheduler.iteration;
    await until(() => harness.coord!.scheduler.iteration >= it1 + 3, 'training continues');
    expect(harness.coord!.events.list('quarantine')).toHaveLength(1);
  });

  it('an honest tab alone on its stage whose jump is real gets a sibling, is verified on it and kept', async () => {
    const tabs = await swarm(['a', 'b', 'spare']);
    const [suspect] = serving(tabs, 0);
    const [spare] = spareOf(tabs);
    const id = suspect!.status().volunteerId;
    // Its forwards compute 1e4x larger activations (as scaled weights would; the spare, which
    // copies its weights, computes the same): a jump against its history that a re-run reproduces.
    spare!.setPoison('amplify-acts');
    suspect!.setPoison('amplify-acts');
    await until(() => siblingEvents().length >= 1, 'an audit sibling');
    const untilMatch = Date.now();
    while ((await metric(/swarm_screening_audits_total\{verdict="match"\} (\d+)/)) < 1) {
      if (Date.now() - untilMatch > 120_000) throw new Error('timed out waiting for an audit that matched');
      await new Promise((r) => setTimeout(r, 50));
    }
    const it0 = harness.coord!.scheduler.iteration;
    await until(() => harness.coord!.scheduler.iteration >= it0 + 5, 'training continues');
    expect(harness.coord!.events.list('quarantine')).toEqual([]);
    expect(await metric(/swarm_screening_audits_total\{verdict="mismatch"\} (\d+)/)).toBe(0);
    expect(harness.coord!.stages.replicas(0).map((v) => v.id).sort()).toEqual([id, spare!.status().volunteerId].sort());
    expect(harness.coord!.events.list('run').some((e) => /audited on .*matches.*kept/.test(e.message))).toBe(true);
  });

  it('with no spare, a surplus replica of another stage moves to be the audit sibling, and the liar is expelled', async () => {
    const tabs = await swarm(['a', 'b', 'c'], 8, 2);
    const alone = [0, 1].find((s) => harness.coord!.stages.size(s) === 1)!;
    const other = 1 - alone;
    const [liar] = serving(tabs, alone);
    const id = liar!.status().volunteerId;
    // Stage 0 relays activations downstream, stage 1 (the head) gradients upstream.
    liar!.setPoison(alone === 0 ? 'inflate-sent-acts' : 'inflate-sent-grads');
    await until(() => harness.coord!.events.list('quarantine').length >= 1, 'quarantine');
    const q = harness.coord!.events.list('quarantine');
    expect(q).toHaveLength(1);
    expect(q[0]!.data).toMatchObject({ stage: alone, volunteer: id });
    expect(q[0]!.message).toMatch(/audit: the sibling's re-run differs/);
    expect(harness.coord!.events.list('assign').some((e) => new RegExp(`leaves stage ${other} .*to be an audit sibling on stage ${alone}`).test(e.message))).toBe(true);
    expect(siblingEvents()).toHaveLength(1);
    const it1 = harness.coord!.scheduler.iteration;
    await until(() => harness.coord!.scheduler.iteration >= it1 + 3, 'training continues');
    expect([harness.coord!.stages.size(0), harness.coord!.stages.size(1)]).toEqual([1, 1]);
  });

  it('closing the coordinator while a sibling is being placed ends its loop: no new pass starts after close()', async () => {
    // bench:screening's "alone" layout: the suspect goes on probation and the spare is placed as
    // its sibling between iterations; every tab is killed and the coordinator closed at once.
    // close() used to come while the loop awaited that placement, abort no pass, and let the loop
    // start a pass that waited forever for the killed tabs.
    const tabs = await swarm(['a', 'b', 'spare']);
    const [suspect] = serving(tabs, 1);
    suspect!.setPoison('inflate-sent-grads');
    await until(() => harness.coord!.scheduler.probation.list().length >= 1, 'probation');
    for (const t of tabs) t.kill();
    const coord = harness.coord!;
    harness.coord = null;
    const closed = await Promise.race([coord.close().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 20_000))]);
    expect(closed).toBe(true);
  });
});

