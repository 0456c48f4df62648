/**
 * Every volunteer trains: 8 WebGPU tabs on 4 stages form groups of 2 replicas, the loss falls,
 * and a tab closed mid-run is absorbed by its sibling without a rebuild.
 */
import { expect, metricValue, test, waitUntil } from './helpers';

const STAGES = 4;

test('8 WebGPU tabs on 4 stages all train; a closed tab is absorbed without a rebuild', async ({ launchSwarm }) => {
  test.setTimeout(420_000);
  const ITERATIONS = 8;
  const swarm = await launchSwarm({
    coordinator: { maxIterations: ITERATIONS, maxReplicas: Infinity, rebalanceEvery: 0 },
    settings: { microbatches: 4 },
  });
  await swarm.openTabs(8);
  const coord = swarm.coord;
  await waitUntil('8 tabs serving the 4 stages', async () => coord.stages.activeCount() === 8, { timeoutMs: 180_000, detail: () => swarm.describe() });
  const m = await swarm.metrics();
  expect(metricValue(m, 'swarm_volunteers', { state: 'active' })).toBe(8);
  // Every stage has a group; how many replicas each gets follows its measured task time.
  let total = 0;
  for (let s = 0; s < STAGES; s++) {
    const n = metricValue(m, 'swarm_stage_replicas', { stage: String(s) })!;
    expect(n).toBeGreaterThanOrEqual(1);
    total += n;
  }
  expect(total).toBe(8);
  await swarm.waitForIteration(4, 240_000);
  // Close one replica of a stage that has siblings while training runs.
  const stage = Array.from({ length: STAGES }, (_, s) => s).find((s) => coord.stages.size(s) >= 2)!;
  const size = coord.stages.size(stage);
  const page = (await swarm.pageForStage(stage))!;
  await expect(page.getByTestId('status-stage')).toHaveText(new RegExp(`Stage ${stage} · replica [1-${size}] of ${size}`));
  await swarm.closeTab(page);
  await swarm.waitForIteration(ITERATIONS, 300_000);
  expect(coord.recovery.done.filter((r) => r.rung === 'strategy')).toEqual([]);
  expect(coord.recovery.done.some((r) => r.rung === 'replica' && r.stage === stage)).toBe(true);
  expect(coord.stages.size(stage)).toBe(size - 1);
  const losses = swarm.trainLosses();
  console.log(`8 tabs: train loss first ${losses[0]!.toFixed(4)}, last ${losses.at(-1)!.toFixed(4)}; iteration seconds ${coord.scheduler.history.map((h) => h.seconds.toFixed(1)).join(' ')}`);
  expect(losses.at(-1)!).toBeLessThan(losses[0]! - 0.3);
});
