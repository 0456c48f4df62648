/** Poisoned numbers: a tab sending non-finite tensors or outlier gradients is quarantined. */
import { describe, it, expect, afterEach } from 'vitest';
import { Coordinator, DEFAULT_COORDINATOR } from './server.js';
import { startNodeVolunteer, type NodeVolunteer } from '../testing/node-volunteer.js';
import { startPoisonedVolunteer, type PoisonedVolunteer } from '../testing/poisoned-volunteer.js';
import { DEFAULT_SETTINGS } from '../shared/run-settings.js';
import { NormOutlierDetector } from './outliers.js';
import { until } from '../testing/until.js';

let coord: Coordinator | null = null;
let vols: NodeVolunteer[] = [];

afterEach(async () => {
  for (const v of vols) v.kill();
  vols = [];
  await coord?.close();
  coord = null;
});


async function swarm(): Promise<string> {
  coord = new Coordinator({
    ...DEFAULT_COORDINATOR,
    maxReplicas: 1, // one tab per stage: extra tabs are spares (these tests exercise the strategy rung)
    settings: { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 2, recovery: 'checkfree' },
    port: 0,
    silent: true,
    evalEvery: 0,
    graceMs: 200,
  });
  return coord.listen();
}

function allFinite(vs: NodeVolunteer[]): boolean {
  return vs.every((v) => !v.agent.currentStage || Object.values(v.agent.currentStage.getWeights()).every((w) => w.every(Number.isFinite)));
}

describe('quarantine of poisoned tabs', () => {
  it('non-finite activations: contribution dropped, tab quarantined, stage rebuilt, no NaN anywhere', async () => {
    const url = await swarm();
    vols.push(await startNodeVolunteer(url, { name: 'h0' }));
    await until(() => coord!.stages.owner(0) !== undefined, 'stage 0');
    const bad = await startPoisonedVolunteer(url, 'nan', { name: 'poisoned' });
    vols.push(bad);
    await until(() => coord!.stages.owner(1)?.caps.agent.includes('poisoned') === true, 'poisoned tab on stage 1');
    for (const n of ['h2', 'h3', 'spare']) vols.push(await startNodeVolunteer(url, { name: n }));
    await until(() => coord!.scheduler.iteration >= 3, 'training after the quarantine');
    const q = coord!.events.list('quarantine');
    expect(q).toHaveLength(1);
    expect(q[0]!.message).toMatch(/stage 1.*non-finite/);
    expect(await coord!.metrics.text()).toMatch(/swarm_rejected_messages_total\{reason="nonfinite"\} 1/);
    expect(coord!.stages.owner(1)!.caps.agent).not.toContain('poisoned');
    expect(allFinite(vols.filter((v) => v !== bad))).toBe(true);
  });

  it('an outlier gradient norm is caught before any stage steps; the culprit is quarantined', async () => {
    const url = await swarm();
    const suspects: PoisonedVolunteer[] = [];
    for (const n of ['h0', 'h1', 'h2', 'h3', 'spare']) {
      const v = await startPoisonedVolunteer(url, null, { name: n });
      suspects.push(v);
      vols.push(v);
    }
    await until(() => coord!.scheduler.iteration >= 6, 'a norm history');
    const culpritId = coord!.stages.owner(2)!.id;
    const culprit = suspects.find((v) => v.status().volunteerId === culpritId)!;
    const stage1 = vols.find((v) => v.status().volunteerId === coord!.stages.owner(1)!.id)!;
    const stepsBefore = stage1.agent.currentStage!.optimizerStep();
    culprit.setPoison('huge-grads');
    await until(() => coord!.events.list('quarantine').length === 1, 'quarantine');
    const q = coord!.events.list('quarantine')[0]!;
    expect(q.data).toMatchObject({ stage: 2, volunteer: culpritId });
    expect(q.message).toMatch(/x its recent median/);
    // The poisoned iteration was abandoned: the innocent upstream stage did not step on it.
    await until(() => coord!.recovery.done.length === 1, 'stage 2 rebuilt');
    coord!.scheduler.paused = true;
    await until(() => coord!.scheduler.state === 'paused', 'paused');
    // One Adam step per completed iteration and none for the abandoned one.
    expect(stage1.agent.currentStage!.optimizerStep()).toBe(coord!.scheduler.iteration);
    expect(coord!.scheduler.iteration).toBeGreaterThan(stepsBefore);
    coord!.scheduler.paused = false;
    coord!.scheduler.kick();
    const it0 = coord!.scheduler.iteration;
    await until(() => coord!.scheduler.iteration >= it0 + 2, 'training continues');
    expect(allFinite(vols.filter((v) => v !== culprit))).toBe(true);
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
    d.reset(1);
    expect(d.screen([0.5, 100, 0.3])).toBeNull();
  });
});
