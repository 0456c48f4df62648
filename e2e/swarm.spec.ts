/**
 * The swarm end to end: a real coordinator in this process and volunteer tabs in headless
 * Chromium training their stages on WebGPU (SwiftShader). Checks that training makes progress
 * and that the three views of the run agree: the coordinator's state, what each tab's page shows,
 * and /metrics. Build first: `npx vite build && npx playwright test e2e/swarm.spec.ts`.
 */
import { expect, mean, metricValue, readStatus, test, waitUntil } from './helpers';

const STAGES = 4;

test('4 tabs train 12 iterations on WebGPU; pages, coordinator and /metrics agree', async ({ launchSwarm }, testInfo) => {
  test.setTimeout(300_000);
  const ITERATIONS = 12;
  const swarm = await launchSwarm({ coordinator: { maxIterations: ITERATIONS } });
  await swarm.openTabs(STAGES);
  await swarm.waitForAllStages();

  // Mid-run screenshot of a volunteer page (the last stage's tab shows a loss).
  await swarm.waitForIteration(3, 180_000);
  const lastStagePage = (await swarm.pageForStage(STAGES - 1))!;
  await expect(lastStagePage.getByTestId('status-stage')).toHaveText(`Stage ${STAGES - 1} · replica 1 of 1`);
  await expect(lastStagePage.getByTestId('status-last-loss')).not.toHaveText('—');
  const shot = testInfo.outputPath('volunteer-mid-run.png');
  await lastStagePage.screenshot({ path: shot, fullPage: true });
  await testInfo.attach('volunteer-mid-run', { path: shot, contentType: 'image/png' });

  await swarm.waitForIteration(ITERATIONS, 240_000);
  // The run stops at maxIterations; every tab has stepped the final iteration.
  await waitUntil(
    'every tab to report the final iteration and the paused run',
    async () => (await swarm.statuses()).every(({ status }) => status?.iteration === ITERATIONS && status.run?.state === 'paused'),
    { timeoutMs: 30_000, detail: () => swarm.describe() },
  );
  const coord = swarm.coord;
  expect(coord.scheduler.iteration).toBe(ITERATIONS);

  const tabs = await swarm.statuses();
  expect(tabs).toHaveLength(STAGES);
  for (const { page, status } of tabs) {
    expect(status!.backend).toBe('webgpu');
    expect(status!.error).toBeNull();
    expect(status!.connection).toBe('connected');
    await expect(page.getByTestId('status-backend')).toContainText('webgpu');
    await expect(page.getByTestId('status-iteration')).toHaveText(String(ITERATIONS));
    await expect(page.getByTestId('status-run')).toContainText(`paused, ${STAGES} stages, iteration ${ITERATIONS}`);
  }
  expect(tabs.map((t) => t.status!.stage).sort()).toEqual([0, 1, 2, 3]);

  // Loss went down: the first iteration against the mean of the last few.
  const losses = swarm.trainLosses();
  expect(losses).toHaveLength(ITERATIONS);
  for (const l of losses) expect(Number.isFinite(l)).toBe(true);
  const lastFew = mean(losses.slice(-3));
  console.log(`train loss: first ${losses[0]!.toFixed(4)}, last three ${losses.slice(-3).map((l) => l.toFixed(4)).join(' ')}; ` +
    `iteration seconds: first ${coord.scheduler.history[0]!.seconds.toFixed(1)}, median ${median(coord.scheduler.history.map((h) => h.seconds)).toFixed(1)}`);
  expect(lastFew).toBeLessThan(losses[0]! - 0.5);
  // Every stage stepped on a real gradient (non-zero norm, clipped to at most 1).
  for (const h of coord.scheduler.history) {
    const norms = h.stages.map((s) => s.norms!);
    expect(norms).toHaveLength(STAGES);
    for (const n of norms) {
      expect(n.preClipNorm).toBeGreaterThan(0);
      expect(n.postClipNorm).toBeLessThanOrEqual(1 + 1e-6);
    }
  }

  // /metrics agrees with the pages and the coordinator.
  const m = await swarm.metrics();
  expect(metricValue(m, 'swarm_iteration')).toBe(tabs[0]!.status!.iteration);
  expect(metricValue(m, 'swarm_stages')).toBe(STAGES);
  expect(metricValue(m, 'swarm_volunteers', { state: 'active' })).toBe(STAGES);
  expect(metricValue(m, 'swarm_volunteers', { state: 'spare' })).toBe(0);
  for (let s = 0; s < STAGES; s++) expect(metricValue(m, 'swarm_stage_backend', { stage: String(s), backend: 'webgpu' }), `stage ${s}`).toBe(1);
  expect(m.filter((x) => x.name === 'swarm_stage_backend' && x.value === 1)).toHaveLength(STAGES);
  expect(metricValue(m, 'swarm_train_loss')).toBe(coord.scheduler.lastTrainLoss);
  expect(metricValue(m, 'swarm_train_loss')).toBe(losses.at(-1));
  expect(metricValue(m, 'swarm_iteration_seconds_count')).toBe(ITERATIONS);
  expect(metricValue(m, 'swarm_tokens_total')).toBe(ITERATIONS * 2 * 1 * 32);

  // The last stage's page shows the loss of a microbatch it computed in the final iteration, and
  // the final iteration's microbatch losses average to the coordinator's train loss.
  const lastStage = tabs.find((t) => t.status!.stage === STAGES - 1)!;
  const finalIteration = swarm.microbatchLosses.filter((x) => x.iteration === ITERATIONS - 1);
  expect(finalIteration.map((x) => x.mb).sort()).toEqual([0, 1]);
  expect(finalIteration.every((x) => x.volunteerId === coord.stages.owner(STAGES - 1)!.id)).toBe(true);
  expect(finalIteration.map((x) => x.loss)).toContain(lastStage.status!.lastLoss);
  expect(mean(finalIteration.map((x) => x.loss))).toBeCloseTo(coord.scheduler.lastTrainLoss!, 6);
  await expect(lastStage.page.getByTestId('status-last-loss')).toHaveText(lastStage.status!.lastLoss!.toFixed(4));
  // Only the head computes a loss: the other tabs never saw one.
  for (const t of tabs) if (t !== lastStage) expect(t.status!.lastLoss).toBeNull();
});

test('a fifth tab becomes the spare; /metrics counts it', async ({ launchSwarm }) => {
  test.setTimeout(180_000);
  const ITERATIONS = 2;
  const swarm = await launchSwarm({ coordinator: { maxIterations: ITERATIONS } });
  await swarm.openTabs(STAGES + 1);
  await swarm.waitForAllStages();
  await waitUntil('the fifth tab to be told it is the spare', async () => (await swarm.statuses()).some((t) => t.status?.stage === 'spare'), {
    timeoutMs: 60_000,
    detail: () => swarm.describe(),
  });
  await swarm.waitForIteration(ITERATIONS, 150_000);

  const tabs = await swarm.statuses();
  const spares = tabs.filter((t) => t.status?.stage === 'spare');
  expect(spares).toHaveLength(1);
  expect(tabs.filter((t) => typeof t.status?.stage === 'number').map((t) => t.status!.stage).sort()).toEqual([0, 1, 2, 3]);
  const spare = spares[0]!;
  expect(spare.status!.backend).toBe('webgpu');
  expect(spare.status!.iteration).toBeNull(); // a spare does no work
  await expect(spare.page.getByTestId('status-stage')).toHaveText('Spare (standby)');
  expect(swarm.coord.placement.spares()).toHaveLength(1);

  const m = await swarm.metrics();
  expect(metricValue(m, 'swarm_volunteers', { state: 'spare' })).toBe(1);
  expect(metricValue(m, 'swarm_volunteers', { state: 'active' })).toBe(STAGES);
  expect(metricValue(m, 'swarm_iteration')).toBe(ITERATIONS);
  // The spare serves no stage, so it has no backend series.
  expect(m.filter((x) => x.name === 'swarm_stage_backend' && x.value === 1)).toHaveLength(STAGES);
  expect((await readStatus(spare.page))?.run?.state).toMatch(/running|paused/);
});

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
