/**
 * Backend selection in the volunteer Web Worker, in real (headless) Chromium, with the page
 * served by a real coordinator (the worker joins it after picking a backend).
 * Assumes `npx vite build` has produced dist/client; served from http://localhost (a secure
 * context, required for navigator.gpu).
 */
import { fileURLToPath } from 'node:url';

import { expect, test, type Page } from '@playwright/test';

import type { VolunteerStatus } from '../client/src/messages';
import { chromiumLaunchOptions } from '../coordinator/cli/chromium';
import { Coordinator, DEFAULT_COORDINATOR } from '../coordinator/server';
import { DEFAULT_SETTINGS } from '../shared/run-settings';

const DIST = fileURLToPath(new URL('../dist/client', import.meta.url));

let coord: Coordinator;
const server = { url: '' };

test.beforeAll(async () => {
  coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings: { ...DEFAULT_SETTINGS }, port: 0, silent: true, clientDir: DIST });
  server.url = await coord.listen();
});

test.afterAll(async () => {
  await coord?.close();
});

test.beforeEach(async ({ page }) => {
  // Surface page + worker console output in the test log (handy when a backend fails).
  page.on('console', (msg) => console.log(`[browser ${msg.type()}] ${msg.text()}`));
  page.on('pageerror', (err) => console.log(`[pageerror] ${err.message}`));
});

function readStatus(page: Page): Promise<VolunteerStatus | null> {
  return page.evaluate(() => window.__volunteerStatus ?? null);
}

/** Wait until the worker has picked a backend (or failed), then return the status. */
async function waitForBackend(page: Page, timeout: number): Promise<VolunteerStatus> {
  await page.waitForFunction(
    () => {
      const s = window.__volunteerStatus;
      return !!s && (s.backend !== null || s.connection === 'error');
    },
    null,
    { timeout, polling: 250 },
  );
  const status = await readStatus(page);
  if (!status) throw new Error('no status');
  expect(status.error, `worker reported an error: ${status.error}`).toBeNull();
  return status;
}

test('worker selects webgpu and shows the adapter', async ({ page }, testInfo) => {
  await page.goto(`${server.url}/?autojoin=1`);
  // navigator.gpu only exists in secure contexts; make sure we are in one.
  expect(await page.evaluate(() => window.isSecureContext)).toBe(true);

  const status = await waitForBackend(page, 120_000);
  expect(status.backend, `skipped: ${JSON.stringify(status.skipped)}`).toBe('webgpu');
  expect(status.skipped).toEqual([]);
  expect(status.adapter).not.toBeNull();
  expect(status.adapter?.vendor || status.adapter?.architecture).toBeTruthy();

  await expect(page.getByTestId('status-backend')).toContainText('webgpu');
  const adapterCell = page.getByTestId('status-adapter');
  await expect(adapterCell).toContainText(status.adapter?.vendor || status.adapter?.architecture || '');
  await expect(adapterCell).not.toHaveText('—');

  // Benchmark finishes, and the worker joins the coordinator (one tab of four: it gets stage 0
  // and the run waits for three more volunteers).
  await page.waitForFunction(() => (window.__volunteerStatus?.throughputGflops ?? 0) > 0, null, {
    timeout: 120_000,
  });
  await expect(page.getByTestId('status-connection')).toHaveAttribute('data-value', 'connected', { timeout: 60_000 });
  await expect(page.getByTestId('status-run')).toContainText('3 more volunteers needed', { timeout: 60_000 });
  await expect(page.getByTestId('status-throughput')).toContainText('GFLOP/s');

  const final = await readStatus(page);
  console.log(`backend=${final?.backend} adapter="${final?.adapter?.label}" throughput=${final?.throughputGflops?.toFixed(3)} GFLOP/s`);

  const shot = testInfo.outputPath('volunteer-webgpu.png');
  await page.screenshot({ path: shot, fullPage: true });
  await testInfo.attach('volunteer-webgpu', { path: shot, contentType: 'image/png' });

  // Stop = graceful leave: worker reports "left", then the page offers Join again.
  await page.getByTestId('join-button').click();
  await expect(page.getByTestId('status-connection')).toHaveAttribute('data-value', 'left');
  await expect(page.getByTestId('join-button')).toHaveText('Join');
});

test('wasm fallback loads its .wasm binary from the build', async ({ page }) => {
  const requests: string[] = [];
  page.on('request', (r) => void requests.push(new URL(r.url()).pathname));
  await page.goto(`${server.url}/?autojoin=1&backends=wasm`);
  const status = await waitForBackend(page, 60_000);
  expect(status.backend).toBe('wasm');
  expect(requests.some((p) => /\/assets\/tfjs-backend-wasm[-\w]*\.wasm$/.test(p))).toBe(true);
  await expect(page.getByTestId('status-adapter')).toContainText('not using WebGPU');
});

test('dashboard without an operator token asks for it', async ({ page }) => {
  await page.goto(`${server.url}/dashboard.html`);
  await expect(page.getByRole('heading', { level: 1 })).toBeVisible();
  await expect(page.getByTestId('token-required')).toContainText('Operator token required');
});

test('without WebGPU the worker falls back and explains why', async ({ playwright }) => {
  // Same Chromium, minus --enable-unsafe-webgpu: navigator.gpu exists but yields no adapter.
  const options = chromiumLaunchOptions();
  const browser = await playwright.chromium.launch({
    ...options,
    args: (options.args ?? []).filter((a) => a !== '--enable-unsafe-webgpu'),
  });
  try {
    const page = await browser.newPage();
    await page.goto(`${server.url}/?autojoin=1`);
    const status = await waitForBackend(page, 120_000);
    console.log(`fallback backend=${status.backend} skipped=${JSON.stringify(status.skipped)}`);
    expect(status.backend).not.toBe('webgpu');
    expect(status.skipped[0]?.backend).toBe('webgpu');
    expect(status.skipped[0]?.reason).toMatch(/adapter/i);
    await expect(page.getByTestId('status-skipped')).toContainText('webgpu');
  } finally {
    await browser.close();
  }
});
