/**
 * The operator dashboard against a real coordinator and a headless swarm of Chromium tabs
 * (WebGPU on SwiftShader, tiny settings): refused without the token; with it, the swarm map
 * shows every stage, the loss chart gains points, an injected failure shows up as a recovery
 * event in the log and a mark on the chart, and the exported model loads back into local stages
 * with the validation loss the swarm reported. Saves a screenshot of the dashboard mid-run.
 *
 * Needs `npx vite build` first.
 */
import { readFileSync } from 'node:fs';

import type { Page } from '@playwright/test';

import { test, expect, waitUntil } from './helpers';
import { useNodeBackend } from '../trainer/node-backend';
import { loadDataset } from '../trainer/corpus-file';
import { evaluate } from '../trainer/pipeline';
import { wireOf } from '../shared/run-settings';
import { stagesFromModelFile } from '../coordinator/operator/model-file';

const TOKEN = 'e2e-operator-token';

async function chartPoints(page: Page, testId: string): Promise<number> {
  return Number(await page.getByTestId(testId).getAttribute('data-points'));
}

test('operator dashboard: token gate, live swarm, loss chart, injected failure, export', async ({ launchSwarm, browser }, testInfo) => {
  test.setTimeout(480_000);
  const swarm = await launchSwarm({ coordinator: { operatorToken: TOKEN, evalEvery: 2, evalBatches: 1 } });
  const { coord, url } = swarm;

  // --- Without the token: a clear refusal, and no data (not even a socket.io request).
  const gate = await browser.newPage();
  const socketRequests: string[] = [];
  gate.on('request', (r) => {
    if (r.url().includes('/socket.io')) socketRequests.push(r.url());
  });
  await gate.goto(`${url}/dashboard`);
  await expect(gate.getByTestId('token-required')).toContainText('Operator token required');
  expect(await gate.evaluate(async () => (await fetch('/api/operator/state')).status)).toBe(401);
  expect(socketRequests).toEqual([]);
  await gate.goto(`${url}/dashboard#token=not-the-token`);
  await gate.reload();
  await expect(gate.getByTestId('token-required')).toContainText('Operator token refused');
  await expect(gate.getByTestId('token-required')).toContainText('invalid operator token');
  await expect(gate.getByTestId('swarm-map')).toHaveCount(0);
  await gate.close();

  // --- The swarm: 4 tabs for the 4 stages and a spare to take over a failed stage.
  await swarm.openTabs(5);
  const dash = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  dash.on('pageerror', (e) => void swarm.logs.push(`[dashboard pageerror] ${e.message}`));
  await dash.goto(`${url}/dashboard#token=${TOKEN}`);
  await expect(dash.getByTestId('connection')).toHaveText('live');

  // Every stage shows the tab serving it (pushed live as tabs join and get assigned).
  for (let s = 0; s < 4; s++) {
    const card = dash.getByTestId(`stage-${s}`);
    await expect(card).toHaveAttribute('data-state', 'training', { timeout: 180_000 });
    await expect(card).toContainText('webgpu');
    const id = (await card.getByTestId('tab-id').textContent())!.trim();
    expect(id).toBe(coord.stages.owner(s)!.id);
  }
  await expect(dash.locator('.spares .chip')).toHaveCount(1, { timeout: 60_000 });

  // The loss chart gains points as iterations complete.
  await expect.poll(() => chartPoints(dash, 'loss-chart'), { timeout: 180_000 }).toBeGreaterThanOrEqual(2);
  const before = await chartPoints(dash, 'loss-chart');
  await expect.poll(() => chartPoints(dash, 'loss-chart'), { timeout: 120_000 }).toBeGreaterThan(before);
  await expect(dash.getByTestId('stage-times').locator('li')).toHaveCount(4);
  await expect(dash.getByTestId('iteration')).not.toHaveText('0');

  const shot = testInfo.outputPath('dashboard-mid-run.png');
  await dash.screenshot({ path: shot, fullPage: true });
  await testInfo.attach('dashboard-mid-run', { path: shot, contentType: 'image/png' });

  // --- Inject a failure on stage 1: a recovery event in the log and a mark on the loss chart.
  const victim = coord.stages.owner(1)!.id;
  expect(await dash.getByTestId('loss-chart').getAttribute('data-marks')).toBe('0');
  await dash.getByTestId('inject-stage').selectOption('1');
  await dash.getByTestId('inject').click();
  await expect(dash.getByTestId('control-message')).toContainText(`dropped ${victim}`);
  const log = dash.getByTestId('event-log');
  await expect(log.locator('li[data-kind="recovery"]').filter({ hasText: 'stage 1 lost' })).toHaveCount(1, { timeout: 60_000 });
  await expect(log.locator('li[data-kind="leave"]').filter({ hasText: 'operator injected failure' })).toHaveCount(1);
  await expect(dash.getByTestId('loss-chart')).toHaveAttribute('data-marks', '1');
  await expect(dash.getByTestId('loss-chart')).toContainText('stage 1 lost');
  // The spare takes the rebuilt stage and training goes on; the recovery reports its cost.
  await expect(log.locator('li[data-kind="recovery"]').filter({ hasText: 'recovered by' })).toHaveCount(1, { timeout: 180_000 });
  await expect(dash.getByTestId('stage-1')).toHaveAttribute('data-state', 'training');
  expect(coord.stages.owner(1)!.id).not.toBe(victim);
  await expect(log.locator('li[data-kind="recovery"]').first()).toContainText(/loss \d+\.\d{4} → \d+\.\d{4}/);

  // Filtering the log by kind.
  await dash.getByTestId('filter-join').click();
  await expect(log.locator('li[data-kind="join"]')).toHaveCount(0);
  await dash.getByTestId('filter-join').click();
  await expect(log.locator('li[data-kind="join"]').first()).toBeVisible();

  // --- Export: one safetensors file; loaded into local stages it gives the swarm's validation loss.
  const download = dash.waitForEvent('download', { timeout: 180_000 });
  await dash.getByTestId('export').click();
  const file = await download;
  expect(file.suggestedFilename()).toMatch(/^swarm-.+-it\d+\.safetensors$/);
  const bytes = new Uint8Array(readFileSync((await file.path())!));
  await useNodeBackend('wasm');
  const { stages, metadata, config } = await stagesFromModelFile(bytes);
  expect(stages).toHaveLength(4);
  expect(config).toEqual(coord.scheduler.opts.config);
  const swarmVal = Number(metadata.val_loss);
  expect(swarmVal).toBeGreaterThan(0);
  expect(coord.scheduler.lastValLoss).toBe(swarmVal);
  const { dataset } = loadDataset({ seqLen: config.seqLen });
  // Like with like: the local stages send their activations over the run's wire encoding too.
  const local = evaluate(stages, dataset.valBatches(Number(metadata.val_batches), Number(metadata.val_batch_size)), wireOf(coord.scheduler.opts.settings));
  console.log(`export at iteration ${metadata.iteration}: swarm val loss ${swarmVal.toFixed(6)} (WebGPU tabs), local ${local.toFixed(6)} (wasm)`);
  expect(Math.abs(local - swarmVal)).toBeLessThan(2e-3);
  for (const st of stages) st.dispose();
  // Training resumes after the export.
  const at = coord.scheduler.iteration;
  await waitUntil('training after the export', () => coord.scheduler.iteration > at, { timeoutMs: 120_000, detail: () => swarm.describe() });

  // --- Sampling: the tabs run the forward passes (greedy, a few bytes: SwiftShader is slow).
  await dash.getByTestId('sample-prompt').fill('Call me ');
  await dash.getByLabel('bytes').fill('3');
  await dash.getByLabel('temperature').fill('0');
  await dash.getByTestId('sample').click();
  await expect(dash.getByTestId('sample-output')).toContainText('3 bytes', { timeout: 120_000 });
  await expect(dash.getByTestId('sample-output')).toContainText('Call me');

  // --- Readable on a phone: one column, nothing wider than the screen.
  await dash.setViewportSize({ width: 390, height: 844 });
  await expect.poll(() => dash.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
  const phone = testInfo.outputPath('dashboard-phone.png');
  await dash.screenshot({ path: phone, fullPage: true });
  await testInfo.attach('dashboard-phone', { path: phone, contentType: 'image/png' });
  await dash.close();
});
