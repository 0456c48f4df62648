/**
 * Recovery end to end with real browser tabs: a volunteer closes its tab mid-run and the swarm
 * rebuilds the lost stage from its neighbours (CheckFree+) on a spare tab, or waits for a new tab
 * when there is no spare. Build first: `npx vite build && npx playwright test e2e/recovery.spec.ts`.
 */
import { expect, IterationWatch, mean, metricValue, nonDecreasing, readStatus, sleep, test, waitUntil, type Swarm } from './helpers';
import type { Page } from '@playwright/test';

import { DEFAULT_COORDINATOR } from '../coordinator/server';

const STAGES = 4;

/** Closes the tab serving `stage` and returns the iteration count at that moment. */
async function closeStageTab(swarm: Swarm, stage: number): Promise<number> {
  const page = await swarm.pageForStage(stage);
  expect(page, `a tab serving stage ${stage}`).toBeDefined();
  const at = swarm.coord.scheduler.iteration;
  await swarm.closeTab(page!);
  return at;
}

/** Waits until `page` reports that it serves `stage`. */
async function waitForTakeover(swarm: Swarm, page: Page, stage: number): Promise<void> {
  await waitUntil(`the replacement tab to report stage ${stage}`, async () => (await readStatus(page))?.stage === stage, {
    timeoutMs: 60_000,
    detail: () => swarm.describe(),
  });
  await expect(page.getByTestId('status-stage')).toHaveText(`Stage ${stage} · replica 1 of 1`);
}

/** Waits for `n` completed recoveries (a recovery completes with the next finished iteration). */
async function waitForRecoveries(swarm: Swarm, n: number): Promise<void> {
  await waitUntil(`${n} completed recover${n === 1 ? 'y' : 'ies'}`, () => swarm.coord.recovery.done.length >= n, {
    timeoutMs: 120_000,
    detail: () => swarm.describe(),
  });
}

/** Waits until `n` tabs report that they are spares, and returns them. */
async function waitForSpares(swarm: Swarm, n: number): Promise<Page[]> {
  await waitUntil(`${n} spare tab(s)`, async () => (await swarm.statuses()).filter((t) => t.status?.stage === 'spare').length === n, {
    timeoutMs: 60_000,
    detail: () => swarm.describe(),
  });
  return (await swarm.statuses()).filter((t) => t.status?.stage === 'spare').map((t) => t.page);
}

/**
 * Waits for an odd iteration count of at least `atLeast`. With replicaEvery 2 the embedding/head
 * replicas are refreshed right after even iterations, so a tab closed now never races a refresh
 * and the replica it leaves behind is exactly one iteration old.
 */
async function waitForOddIteration(swarm: Swarm, atLeast: number): Promise<number> {
  await waitUntil(`an odd iteration count >= ${atLeast}`, () => swarm.coord.scheduler.iteration >= atLeast && swarm.coord.scheduler.iteration % 2 === 1, {
    timeoutMs: 150_000,
    pollMs: 100,
    detail: () => swarm.describe(),
  });
  return swarm.coord.scheduler.iteration;
}

/** The iteration records are 1, 2, 3, ... : nothing was rolled back or repeated. */
function expectConsecutiveHistory(swarm: Swarm, total: number): void {
  expect(swarm.coord.scheduler.history.map((h) => h.iteration)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
}

test('stage S-2 tab closes: the spare takes over a copy of its swap partner and training continues', async ({ launchSwarm }) => {
  test.setTimeout(240_000);
  const ITERATIONS = 9;
  const LOST = 2;
  const swarm = await launchSwarm({ coordinator: { maxIterations: ITERATIONS } });
  await swarm.openTabs(STAGES + 1);
  await swarm.waitForAllStages();
  const [spare] = await waitForSpares(swarm, 1);

  await swarm.waitForIteration(3, 150_000);
  const lostAt = await closeStageTab(swarm, LOST);
  await waitForTakeover(swarm, spare!, LOST);
  await swarm.waitForIteration(ITERATIONS, 150_000);

  const [ev, ...more] = swarm.coord.recovery.done;
  expect(more).toHaveLength(0);
  // CheckFree+ (paper): stage S-2 is the swap partner of the last stage, so it is copied from it.
  expect(ev).toMatchObject({ stage: LOST, strategy: 'checkfree+', method: 'copy', fallback: false });
  expect(ev!.sources.map((s) => s.stage).sort()).toEqual([LOST + 1]);
  expect(ev!.iteration).toBeGreaterThanOrEqual(lostAt);
  expect(ev!.seconds).toBeGreaterThan(0);

  // Training went on past the loss and the loss kept falling.
  expectConsecutiveHistory(swarm, ITERATIONS);
  const losses = swarm.trainLosses();
  const before = losses[ev!.iteration - 1]!;
  const final = mean(losses.slice(-2));
  console.log(`losses: ${losses.map((l) => l.toFixed(3)).join(' ')}; stage ${LOST} lost after iteration ${ev!.iteration} (${before.toFixed(3)}), ` +
    `first after recovery ${ev!.lossAfter!.toFixed(3)}, recovery ${ev!.seconds!.toFixed(1)} s`);
  expect(final).toBeLessThan(before);
  expect(final).toBeLessThan(ev!.lossAfter!);
  expect(final).toBeLessThan(losses[0]! - 0.5);

  // The former spare trains the stage now; every tab finished the run.
  const tabs = await swarm.statuses();
  expect(tabs.map((t) => t.status!.stage).sort()).toEqual([0, 1, 2, 3]);
  for (const { status } of tabs) expect(status!.iteration).toBe(ITERATIONS);
  expect((await readStatus(spare!))!.backend).toBe('webgpu');
  const m = await swarm.metrics();
  expect(metricValue(m, 'swarm_recoveries_total', { rung: 'strategy', method: 'copy' })).toBe(1);
  expect(metricValue(m, 'swarm_volunteers', { state: 'spare' })).toBe(0);
  expect(metricValue(m, 'swarm_volunteers', { state: 'active' })).toBe(STAGES);
  expect(metricValue(m, 'swarm_abandoned_iterations_total')).toBeLessThanOrEqual(1);
});

test('first then last stage tab close: both rebuilt by copy on spares, no rollback', async ({ launchSwarm }) => {
  test.setTimeout(300_000);
  const ITERATIONS = 10;
  const swarm = await launchSwarm({
    coordinator: { maxIterations: ITERATIONS, recovery: { ...DEFAULT_COORDINATOR.recovery, replicaEvery: 2 } },
  });
  await swarm.openTabs(STAGES + 2);
  await swarm.waitForAllStages();
  const spares = await waitForSpares(swarm, 2);
  const watch = new IterationWatch(swarm);
  try {
    // Replicas of the embedding/head are refreshed after iteration 2; lose stage 0 after that.
    await waitForOddIteration(swarm, 3);
    await closeStageTab(swarm, 0);
    await waitForRecoveries(swarm, 1);
    const firstReplacement = await swarm.pageForStage(0);
    expect(spares).toContain(firstReplacement);

    // A few iterations later, the last stage.
    await waitForOddIteration(swarm, swarm.coord.recovery.done[0]!.iteration + 3);
    await closeStageTab(swarm, STAGES - 1);
    await waitForRecoveries(swarm, 2);
    const lastReplacement = await swarm.pageForStage(STAGES - 1);
    expect(spares).toContain(lastReplacement);
    expect(lastReplacement).not.toBe(firstReplacement);
    await swarm.waitForIteration(ITERATIONS, 150_000);
  } finally {
    watch.stop();
  }

  const [first, last, ...more] = swarm.coord.recovery.done;
  expect(more).toHaveLength(0);
  expect(first).toMatchObject({ stage: 0, method: 'copy', fallback: false });
  expect(last).toMatchObject({ stage: STAGES - 1, method: 'copy', fallback: false });
  // Blocks from the swap partner, embedding/head from the replica it holds (not re-initialised).
  expect(first!.sources.map((s) => `${s.stage}:${s.part}`).sort()).toEqual(['1:blocks', '1:embed-replica']);
  expect(last!.sources.map((s) => `${s.stage}:${s.part}`).sort()).toEqual([`${STAGES - 2}:blocks`, `${STAGES - 2}:head-replica`]);
  expect(last!.iteration).toBeGreaterThanOrEqual(first!.iteration + 3);

  // No rollback: the counter only went up, and each recovery's next iteration was the one after.
  expect(nonDecreasing(watch.coordinator)).toBe(true);
  for (const [page, seen] of watch.tabs) expect(nonDecreasing(seen), `tab iterations ${seen.join(',')} (${page.url()})`).toBe(true);
  expectConsecutiveHistory(swarm, ITERATIONS);
  for (const ev of [first!, last!]) {
    const next = swarm.coord.scheduler.history.find((h) => h.time > ev.detectedAt)!;
    expect(next.iteration).toBe(ev.iteration + 1);
  }
  const losses = swarm.trainLosses();
  for (const l of losses) expect(Number.isFinite(l)).toBe(true);
  // A copy keeps most of the progress: the loss right after each recovery stays below the start.
  for (const ev of [first!, last!]) expect(ev.lossAfter!).toBeLessThan(losses[0]!);

  const tabs = await swarm.statuses();
  expect(tabs.map((t) => t.status!.stage).sort()).toEqual([0, 1, 2, 3]);
  for (const { status } of tabs) expect(status!.iteration).toBe(ITERATIONS);
  const m = await swarm.metrics();
  expect(metricValue(m, 'swarm_recoveries_total', { rung: 'strategy', method: 'copy' })).toBe(2);
  expect(metricValue(m, 'swarm_iteration')).toBe(ITERATIONS);
  console.log(`copy recoveries after iterations ${first!.iteration} and ${last!.iteration}: ` +
    `${first!.seconds!.toFixed(1)} s and ${last!.seconds!.toFixed(1)} s; losses ${swarm.trainLosses().map((l) => l.toFixed(3)).join(' ')}`);
});

test('no spare: the run waits for a volunteer, then a new tab takes the stage and it resumes', async ({ launchSwarm }) => {
  test.setTimeout(240_000);
  const ITERATIONS = 6;
  const LOST = 1;
  const swarm = await launchSwarm({ coordinator: { maxIterations: ITERATIONS } });
  await swarm.openTabs(STAGES);
  await swarm.waitForAllStages();
  await swarm.waitForIteration(2, 150_000);
  await closeStageTab(swarm, LOST);

  // Paused: the coordinator and every remaining page say one volunteer is needed.
  await waitUntil('the run to wait for one volunteer', () => swarm.coord.scheduler.status().state === 'recovering' && swarm.coord.scheduler.status().needed === 1, {
    timeoutMs: 30_000,
    detail: () => swarm.describe(),
  });
  await waitUntil(
    'every page to show the recovering run',
    async () => (await swarm.statuses()).every(({ status }) => status?.run?.state === 'recovering' && status.run.needed === 1),
    { timeoutMs: 30_000, detail: () => swarm.describe() },
  );
  for (const page of swarm.pages) await expect(page.getByTestId('status-run')).toHaveText('rebuilding a lost stage; 1 more volunteer needed');
  const paused = swarm.coord.scheduler.iteration;
  const pausedHistory = swarm.coord.scheduler.history.length;
  // Several iterations' worth of time (one takes 2-3 s here): nothing completes while paused.
  const watch = new IterationWatch(swarm);
  await sleep(10_000);
  watch.stop();
  expect(new Set(watch.coordinator)).toEqual(new Set([paused]));
  expect(swarm.coord.scheduler.history).toHaveLength(pausedHistory);
  const m = await swarm.metrics();
  expect(metricValue(m, 'swarm_iteration')).toBe(paused);
  expect(metricValue(m, 'swarm_volunteers', { state: 'active' })).toBe(STAGES - 1);
  for (const { status } of await swarm.statuses()) {
    expect(status!.iteration).toBe(paused);
    expect(status!.run).toMatchObject({ state: 'recovering', needed: 1, iteration: paused });
  }

  // A new volunteer arrives: it gets the lost stage (CheckFree+ copies stage 1 from its swap partner, stage 0) and the run resumes.
  const [newcomer] = await swarm.openTabs(1);
  await waitForTakeover(swarm, newcomer!, LOST);
  await swarm.waitForIteration(ITERATIONS, 150_000);
  await waitUntil('the newcomer to finish the run', async () => (await readStatus(newcomer!))?.iteration === ITERATIONS, {
    timeoutMs: 30_000,
    detail: () => swarm.describe(),
  });
  const [ev] = swarm.coord.recovery.done;
  expect(ev).toMatchObject({ stage: LOST, method: 'copy', fallback: false });
  expect(ev!.iteration).toBe(paused);
  expectConsecutiveHistory(swarm, ITERATIONS);
  for (const { status } of await swarm.statuses()) expect(status!.run?.state).toMatch(/running|paused/);
  await expect(newcomer!.getByTestId('status-run')).toContainText(`${STAGES} stages, iteration ${ITERATIONS}`);
});
