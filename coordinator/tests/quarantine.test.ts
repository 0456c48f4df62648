/** Poisoned numbers: a tab sending non-finite tensors or outlier gradients is quarantined. */
import { describe, it, expect } from 'vitest';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { startNodeVolunteer, type NodeVolunteer } from '../../testing/node-volunteer.js';
import { startPoisonedVolunteer, type PoisonedVolunteer } from '../../testing/poisoned-volunteer.js';
import { DEFAULT_SETTINGS } from '../../shared/run-settings.js';
import { NormOutlierDetector } from '../screening/outliers.js';
import { RelayNorms } from '../screening/relay-norms.js';
import type { Volunteer } from '../tabs/registry.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';

const harness = testSwarm();


async function swarm(): Promise<string> {
  harness.coord = new Coordinator({
    ...DEFAULT_COORDINATOR,
    maxReplicas: 1, // one tab per stage: extra tabs are spares (these tests exercise the strategy rung)
    settings: { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 2, recovery: 'checkfree' },
    port: 0,
    silent: true,
    evalEvery: 0,
    graceMs: 200,
  });
  return harness.coord.listen();
}

function allFinite(vs: NodeVolunteer[]): boolean {
  return vs.every((v) => !v.agent.currentStage || Object.values(v.agent.currentStage.getWeights()).every((w) => w.every(Number.isFinite)));
}

describe('quarantine of poisoned tabs', () => {
  it('non-finite activations: contribution dropped, tab quarantined, stage rebuilt, no NaN anywhere', async () => {
    const url = await swarm();
    harness.vols.push(await startNodeVolunteer(url, { name: 'h0' }));
    await until(() => harness.coord!.stages.owner(0) !== undefined, 'stage 0');
    const bad = await startPoisonedVolunteer(url, 'nan', { name: 'poisoned' });
    harness.vols.push(bad);
    await until(() => harness.coord!.stages.owner(1)?.caps.agent.includes('poisoned') === true, 'poisoned tab on stage 1');
    for (const n of ['h2', 'h3', 'spare']) harness.vols.push(await startNodeVolunteer(url, { name: n }));
    await until(() => harness.coord!.scheduler.iteration >= 3, 'training after the quarantine');
    const q = harness.coord!.events.list('quarantine');
    expect(q).toHaveLength(1);
    expect(q[0]!.message).toMatch(/stage 1.*non-finite/);
    expect(await harness.coord!.metrics.text()).toMatch(/swarm_rejected_messages_total\{reason="nonfinite"\} 1/);
    expect(harness.coord!.stages.owner(1)!.caps.agent).not.toContain('poisoned');
    expect(allFinite(harness.vols.filter((v) => v !== bad))).toBe(true);
  });

  // One tab per stage: the outlier is a suspicion (own-gradient-audit.ts), unverifiable at first;
  // the spare joins stage 2 as its audit sibling, the retry runs without the culprit, the outlier
  // does not reproduce, and the culprit is convicted.
  it('an outlier gradient norm is caught before any stage steps; the culprit is audited on its audit sibling and quarantined', async () => {
    const suspects = await poisonableSwarm(await swarm(), 6);
    const culpritId = harness.coord!.stages.owner(2)!.id;
    const culprit = tabOf(suspects, 2);
    const stage1 = harness.vols.find((v) => v.status().volunteerId === harness.coord!.stages.owner(1)!.id)!;
    const stepsBefore = stage1.agent.currentStage!.optimizerStep();
    culprit.setPoison('huge-grads');
    await until(() => harness.coord!.events.list('quarantine').length === 1, 'quarantine');
    const q = harness.coord!.events.list('quarantine')[0]!;
    expect(q.data).toMatchObject({ stage: 2, volunteer: culpritId });
    expect(q.message).toMatch(/x its recent median.*own-gradient audit: the retry without it/);
    // The poisoned iteration was abandoned: the innocent upstream stage did not step on it.
    await until(() => harness.coord!.stages.owner(2) !== undefined && harness.coord!.stages.owner(2)!.id !== culpritId, 'stage 2 served by its audit sibling');
    harness.coord!.scheduler.setPaused(true);
    await until(() => harness.coord!.scheduler.state === 'paused', 'paused');
    // One Adam step per completed iteration and none for the abandoned one.
    expect(stage1.agent.currentStage!.optimizerStep()).toBe(harness.coord!.scheduler.iteration);
    expect(harness.coord!.scheduler.iteration).toBeGreaterThan(stepsBefore);
    harness.coord!.scheduler.setPaused(false);
    harness.coord!.scheduler.kick();
    const it0 = harness.coord!.scheduler.iteration;
    await until(() => harness.coord!.scheduler.iteration >= it0 + 2, 'training continues');
    expect(allFinite(harness.vols.filter((v) => v !== culprit))).toBe(true);
  });
});

/** Five tabs that can each be poisoned later; training until every stage has a norm history (`history` iterations). */
async function poisonableSwarm(url: string, history = 7): Promise<PoisonedVolunteer[]> {
  const tabs = await harness.poisonable(url, ['h0', 'h1', 'h2', 'h3', 'spare']);
  await until(() => harness.coord!.scheduler.iteration >= history, 'a norm history');
  return tabs;
}

function tabOf(tabs: PoisonedVolunteer[], stage: number): PoisonedVolunteer {
  const id = harness.coord!.stages.owner(stage)!.id;
  return tabs.find((v) => v.status().volunteerId === id)!;
}

describe('blaming the right tab: per-sender norms of relayed frames', () => {
  // With one tab per stage nobody can re-run the suspect's hop: the first suspicion is
  // unverifiable, so the tab is put on probation, and the spare joins its stage as an audit
  // sibling (issue 22, audit-siblings.ts): the retry's suspicion is re-run there and the mismatch
  // convicts the culprit, never its neighbours. Without a spare: probation only
  // (coordinator/screening/evidence-before-conviction.test.ts).
  it('a tab inflating the gradients it sends upstream is suspected (not the neighbour whose norm exploded), put on probation, and convicted on its audit sibling', async () => {
    const url = await swarm();
    const tabs = await poisonableSwarm(url);
    const culprit = tabOf(tabs, 2);
    const neighbour = tabOf(tabs, 1);
    const neighbourId = neighbour.status().volunteerId;
    const culpritId = culprit.status().volunteerId;
    culprit.setPoison('inflate-sent-grads');
    await until(() => harness.coord!.scheduler.probation.list().length >= 1, 'probation');
    expect(harness.coord!.scheduler.probation.list()).toMatchObject([{ stage: 2, volunteer: culpritId }]);
    // Traced from stage 1's outlier gradient to the frames stage 2 relayed into it.
    expect(harness.coord!.scheduler.probation.list()[0]!.reason).toMatch(/relayed gradients to stage 1 .*x its recent median/);
    expect(await harness.coord!.metrics.text()).toMatch(/swarm_screening_suspicions_total\{rule="upstream"\} [1-9]/);
    const it0 = harness.coord!.scheduler.iteration;
    await until(() => harness.coord!.scheduler.iteration >= it0 + 15, 'training continues');
    // The honest neighbour kept its stage throughout; only the culprit was quarantined, on the audit.
    expect(harness.coord!.stages.owner(1)!.id).toBe(neighbourId);
    const q = harness.coord!.events.list('quarantine');
    expect(q).toHaveLength(1);
    expect(q[0]!.data).toMatchObject({ stage: 2, volunteer: culpritId });
    expect(q[0]!.message).toMatch(/audit: the sibling's re-run differs/);
    expect(allFinite(harness.vols.filter((v) => v !== culprit))).toBe(true);
  });

  it('a tab inflating the activations it sends downstream is suspected, not the stages after it, put on probation, and convicted on its audit sibling', async () => {
    const url = await swarm();
    const tabs = await poisonableSwarm(url);
    const culprit = tabOf(tabs, 1);
    const after = [2, 3].map((s) => harness.coord!.stages.owner(s)!.id);
    const culpritId = culprit.status().volunteerId;
    culprit.setPoison('inflate-sent-acts');
    await until(() => harness.coord!.scheduler.probation.list().length >= 1, 'probation');
    expect(harness.coord!.scheduler.probation.list()).toMatchObject([{ stage: 1, volunteer: culpritId }]);
    // No stage's gradient norm was an outlier here: the screen of relayed frames caught it.
    expect(harness.coord!.scheduler.probation.list()[0]!.reason).toMatch(/relayed activations to stage 2 .*x its recent median/);
    expect(await harness.coord!.metrics.text()).toMatch(/swarm_screening_suspicions_total\{rule="jump"\} [1-9]/);
    const it0 = harness.coord!.scheduler.iteration;
    await until(() => harness.coord!.scheduler.iteration >= it0 + 15, 'training continues');
    expect([2, 3].map((s) => harness.coord!.stages.owner(s)!.id)).toEqual(after);
    const q = harness.coord!.events.list('quarantine');
    expect(q).toHaveLength(1);
    expect(q[0]!.data).toMatchObject({ stage: 1, volunteer: culpritId });
    expect(q[0]!.message).toMatch(/audit: the sibling's re-run differs/);
  });
});

describe('RelayNorms', () => {
  const tab = (id: string) => ({ id }) as Volunteer;
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(tab) as [Volunteer, Volunteer, Volunteer, Volunteer];
  /** One iteration of a 3-stage pipeline: a on 0, b on 1, c on 2; grads scaled by `g`, acts by `x`. */
  const iteration = (r: RelayNorms, over: { g1?: number; g2?: number; x0?: number; x1?: number } = {}, commit = true) => {
    r.begin();
    r.record(a, 0, 'act', 1, 10 * (over.x0 ?? 1));
    r.record(b, 1, 'act', 2, 12 * (over.x1 ?? 1));
    r.record(c, 2, 'grad', 1, 0.01 * (over.g2 ?? 1));
    r.record(b, 1, 'grad', 0, 0.02 * (over.g1 ?? 1));
    if (commit) r.commit();
  };

  it('blames the sender of the inflated gradient, following victims that relayed it on', () => {
    const r = new RelayNorms(50, 20, 3);
    iteration(r, { g2: 1e4, g1: 1e4 }, false);
    expect(r.blame(1)).toBeNull(); // no history yet
    expect(r.screen()).toBeNull();
    for (let i = 0; i < 3; i++) iteration(r);
    iteration(r, { g2: 1e4, g1: 1e4 }, false);
    // Stage 0's gradient exploded: b relayed it, but b only passed on what c sent.
    expect(r.blame(0)).toMatchObject({ sender: c, stage: 2, dir: 'grad' });
    expect(r.blame(1)).toMatchObject({ sender: c, stage: 2 });
    expect(r.screen()).toMatchObject({ sender: c });
    // Honest noise blames nobody.
    iteration(r, { g2: 3, g1: 3, x1: 2 }, false);
    expect(r.blame(1)).toBeNull();
    expect(r.screen()).toBeNull();
  });

  it('screens a jump only when the inputs are calm and known', () => {
    const r = new RelayNorms(50, 20, 3);
    for (let i = 0; i < 3; i++) iteration(r);
    iteration(r, { x1: 100 }, false);
    expect(r.screen()).toMatchObject({ sender: b, dir: 'act', reason: expect.stringMatching(/relayed activations to stage 2 .*100x its recent median/) });
    // b's own input jumped too: b is a victim, a the origin.
    iteration(r, { x0: 100, x1: 100 }, false);
    expect(r.screen()).toMatchObject({ sender: a });
    // A tab new to its stage (d replaced a on 0) is not judged, nor are those it feeds.
    r.forget(a);
    r.begin();
    r.record(d, 0, 'act', 1, 1000);
    r.record(b, 1, 'act', 2, 1200);
    r.record(c, 2, 'grad', 1, 0.01);
    r.record(b, 1, 'grad', 0, 0.02);
    expect(r.screen()).toBeNull();
    // ... but after a gradient outlier, it is compared with its stage's recent history.
    // (b's activations into 2 jumped, and so did what d sent b: d is the origin.)
    expect(r.blame(2)).toMatchObject({ sender: d, stage: 0, reason: expect.stringMatching(/stage's recent median/) });
  });

  it('compares a replica with its siblings of the same iteration', () => {
    const r = new RelayNorms(50, 20, 3);
    r.begin();
    r.record(c, 2, 'grad', 1, 0.01);
    r.record(d, 2, 'grad', 1, 5);
    expect(r.blame(1)).toMatchObject({ sender: d, reason: expect.stringMatching(/other replicas/) });
  });
});

describe('NormOutlierDetector', () => {
  it('needs a history, flags a >factor x median outlier and blames the stage nearest the loss', () => {
    const d = new NormOutlierDetector(3, 10, 50, 20, 3);
    expect(d.screen([1e9, 1, 1])).toBeNull(); // no history yet
    for (let i = 0; i < 3; i++) d.accept([0.5, 0.4, 0.3]);
    expect(d.screen([0.6, 0.5, 0.2])).toBeNull();
    expect(d.screen([0.5, 30, 0.3])).toBeNull(); // 75x the median, but an honest-sized spike
    expect(d.screen([100, 100, 0.3])).toMatchObject({ stage: 1 });
    expect(d.screen([0.5, NaN, 0.3])).toMatchObject({ stage: 1, reason: expect.stringMatching(/non-finite/) });
  });
});
