/**
 * The volunteer page's own features in Chromium, against a real coordinator (one WebGPU tab on
 * stage 0 or 1, a Node volunteer on the other): keyboard-only use with labelled controls and a
 * live status region on a phone-sized screen; the opt-in nickname (validated); what this tab and
 * this browser gave and the public top-contributors table; the GPU-share control; pause and resume
 * without leaving the page; the hidden-tab notice; the shared model sample. Plus the built
 * bundle: the volunteer page loads none of the dashboard's code.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import type { Page } from '@playwright/test';

import { startNodeVolunteer, type NodeVolunteer } from '../testing/node-volunteer';
import { CLIENT_DIR, expect, readStatus, test, waitUntil } from './helpers';

async function tabTo(page: Page, testId: string, maxTabs = 30): Promise<void> {
  for (let i = 0; i < maxTabs; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((id) => document.activeElement?.getAttribute('data-testid') === id, testId)) return;
  }
  throw new Error(`Tab never reached [data-testid=${testId}]`);
}

test('volunteer page: keyboard, screen reader, phone; contributions, nickname, GPU share, pause/resume, hidden notice, sample', async ({ launchSwarm, page }) => {
  const swarm = await launchSwarm({ settings: { stages: 2, seqLen: 16 }, coordinator: { sampleEverySeconds: 1 } });
  await page.setViewportSize({ width: 390, height: 844 });
  page.on('console', (m) => swarm.logs.push(`[page ${m.type()}] ${m.text()}`));
  let node: NodeVolunteer | null = null;
  try {
    await page.goto(`${swarm.url}/`);
    // Phone-sized: nothing wider than the screen.
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    // Every control has an accessible name; status changes are announced politely.
    await expect(page.getByLabel(/Use at most \d+% of my GPU/)).toBeVisible();
    await expect(page.getByLabel('Nickname for the public table (optional)')).toBeVisible();
    await expect(page.getByRole('status')).toHaveAttribute('aria-live', 'polite');

    // Nickname by keyboard: an invalid one is refused with an alert, a valid one kept.
    await tabTo(page, 'nickname-input');
    await page.keyboard.type('<b>Ahab</b>');
    await page.keyboard.press('Enter');
    await expect(page.getByTestId('nickname-error')).toHaveAttribute('role', 'alert');
    await page.getByTestId('nickname-input').fill('');
    await page.getByTestId('nickname-input').focus();
    await page.keyboard.type('Ishmael');
    await page.keyboard.press('Enter');
    await expect(page.getByTestId('nickname-error')).toHaveCount(0);

    // Join by keyboard (Shift+Tab back to the Join button, Enter).
    await page.getByTestId('join-button').focus();
    await page.keyboard.press('Enter');
    node = await startNodeVolunteer(swarm.url, { name: 'page-peer' });
    await waitUntil('the tab to train 2 iterations', async () => ((await readStatus(page))?.iteration ?? 0) >= 2, {
      timeoutMs: 120_000,
      detail: async () => JSON.stringify(await readStatus(page)),
    });
    await expect(page.getByRole('status')).toContainText('Connected');
    await expect(page.getByRole('status')).toContainText('Stage');

    // What you give: this tab, this browser, the swarm, the public table with this browser marked.
    const tabMb = Number(await page.getByTestId('totals-tab').locator('td').nth(2).getAttribute('data-value'));
    expect(tabMb).toBeGreaterThanOrEqual(2 * 2); // 2 iterations x 2 microbatches through this tab's stage
    const s = await readStatus(page);
    expect(s!.tokens).toBe(s!.microbatches * 16); // batch 1 x seq 16
    await expect(page.getByTestId('swarm-volunteers')).toContainText('2 volunteers');
    const mine = page.getByTestId('top-contributors').locator('tr[data-mine=true]');
    await expect(mine).toContainText('Ishmael', { timeout: 20_000 });
    await expect(mine).toContainText('(you)');
    const table = await page.getByTestId('top-contributors').innerText();
    for (const v of swarm.coord.registry.all()) expect(table).not.toContain(v.id);
    expect(table).not.toContain('127.0.0.1');

    // GPU share by keyboard: 100% -> 50% in five steps of 10.
    await page.getByTestId('duty-slider').focus();
    for (let i = 0; i < 5; i++) await page.keyboard.press('ArrowLeft');
    await expect(page.getByText('Use at most 50% of my GPU')).toBeVisible();
    await waitUntil('the worker to take the 50% duty cycle', async () => (await readStatus(page))?.dutyPercent === 50, { timeoutMs: 10_000 });

    // Headless Chromium never hides a tab, so the page's visibility is emulated here: the
    // notice must show while "hidden" and iterations in that time are filed under hidden.
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await expect(page.getByTestId('hidden-notice')).toBeVisible();
    const it0 = (await readStatus(page))!.iteration!;
    await waitUntil('an iteration while hidden', async () => ((await readStatus(page))?.iteration ?? 0) >= it0 + 2, { timeoutMs: 60_000 });
    await expect(page.getByTestId('throttle-measure')).toContainText(/while hidden: [\d.]+ \([1-9]\d* seen\)/);
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await expect(page.getByTestId('hidden-notice')).toHaveCount(0);
    await expect(page.getByTestId('wake-lock')).toHaveAttribute('data-value', /held|refused|unsupported/);

    // Pause leaves the swarm (the coordinator sees the tab go) without leaving the page; Resume rejoins.
    await page.getByTestId('pause-button').focus();
    await page.keyboard.press('Enter');
    await waitUntil('the tab to pause', async () => (await readStatus(page))?.connection === 'paused', { timeoutMs: 20_000 });
    await waitUntil('the coordinator to see one volunteer', () => swarm.coord.registry.all().length === 1, { timeoutMs: 20_000 });
    await expect(page.getByTestId('pause-button')).toHaveText('Resume');
    const before = (await readStatus(page))!.microbatches;
    await page.keyboard.press('Enter');
    await waitUntil('the tab to rejoin and train again', async () => {
      const st = await readStatus(page);
      return st?.connection === 'connected' && st.microbatches > before;
    }, { timeoutMs: 120_000, detail: async () => JSON.stringify(await readStatus(page)) });
    expect(swarm.coord.registry.all()).toHaveLength(2);

    // The shared sample the coordinator made from the swarm's model (through
    // this WebGPU tab: slow on SwiftShader, so checked last).
    await expect(page.getByTestId('sample')).toBeVisible({ timeout: 90_000 });
    expect(swarm.coord.sharedSample.latest).not.toBeNull();
    await expect(page.getByTestId('sample')).toContainText(swarm.coord.sharedSample.latest!.prompt);

    // This browser's totals survive a reload (localStorage), the tab's start again.
    const browserMb = Number(await page.getByTestId('totals-browser').locator('td').nth(2).getAttribute('data-value'));
    expect(browserMb).toBeGreaterThan(before);
    await page.getByTestId('join-button').click(); // Stop
    await page.reload();
    expect(Number(await page.getByTestId('totals-browser').locator('td').nth(2).getAttribute('data-value'))).toBeGreaterThanOrEqual(browserMb);
    expect(Number(await page.getByTestId('totals-tab').locator('td').nth(2).getAttribute('data-value'))).toBe(0);
  } finally {
    node?.kill();
  }
});

/** The page's JS: its entry script and modulepreloads, and every chunk they import, statically or not. */
function pageScripts(html: string): Map<string, number> {
  const seen = new Map<string, number>();
  const queue = [...html.matchAll(/(?:src|href)="\/assets\/([^"]+\.js)"/g)].map((m) => m[1]!);
  while (queue.length) {
    const f = queue.pop()!;
    if (seen.has(f)) continue;
    const text = readFileSync(join(CLIENT_DIR, 'assets', f), 'utf8');
    seen.set(f, statSync(join(CLIENT_DIR, 'assets', f)).size);
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*"\.\/([^"]+\.js)"/g)) queue.push(m[1]!);
  }
  return seen;
}

function sourcesOf(files: Iterable<string>): string[] {
  return [...files].flatMap((f) => (JSON.parse(readFileSync(join(CLIENT_DIR, 'assets', `${f}.map`), 'utf8')) as { sources: string[] }).sources);
}

test('the volunteer bundle loads none of the dashboard\'s code, and is smaller', () => {
  const volunteer = pageScripts(readFileSync(join(CLIENT_DIR, 'index.html'), 'utf8'));
  const dashboard = pageScripts(readFileSync(join(CLIENT_DIR, 'dashboard.html'), 'utf8'));
  const volunteerSources = sourcesOf(volunteer.keys());
  expect(volunteerSources.some((s) => s.includes('client/src/VolunteerApp.tsx'))).toBe(true);
  const leaked = volunteerSources.filter((s) => s.includes('client/src/dashboard/') || s.includes('uplot') || s.includes('shared/protocol/operator'));
  expect(leaked).toEqual([]);
  expect(sourcesOf(dashboard.keys()).some((s) => s.includes('client/src/dashboard/'))).toBe(true);
  const kb = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0) / 1024;
  console.log(`built sizes: volunteer page ${kb(volunteer).toFixed(1)} KiB of JS in ${volunteer.size} files (the training worker loads on Join); dashboard ${kb(dashboard).toFixed(1)} KiB in ${dashboard.size} files`);
  expect(kb(volunteer)).toBeLessThan(kb(dashboard));
  expect(kb(volunteer)).toBeLessThan(512);
});
