/**
 * The volunteer page over HTTPS on a non-localhost address: the coordinator serves TLS itself
 * (`--tls self-signed`, made for 127.0.0.2) and the test's Chromium trusts that certificate by
 * its public key (--ignore-certificate-errors-spki-list), as a volunteer who checked the
 * fingerprint would. WebGPU only exists in secure contexts, so this is what a LAN volunteer gets:
 * navigator.gpu is there and the tab trains (with a Node volunteer on the other stage, over wss).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';

import { chromium, expect, test } from '@playwright/test';

import { chromiumLaunchOptions } from '../coordinator/cli/chromium';
import { Coordinator, DEFAULT_COORDINATOR } from '../coordinator/server';
import { spkiHash, tlsFromSettings } from '../coordinator/gateway/tls';
import { startNodeVolunteer, type NodeVolunteer } from '../testing/node-volunteer';
import { CLIENT_DIR, TINY_SETTINGS, readStatus, waitUntil } from './helpers';

test('volunteer page over HTTPS on 127.0.0.2: secure context, navigator.gpu, the tab trains', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'swarm-https-'));
  let coord: Coordinator | null = null;
  let node: NodeVolunteer | null = null;
  const browser = { current: null as Awaited<ReturnType<typeof chromium.launch>> | null };
  try {
    const tls = await tlsFromSettings({ tls: 'self-signed', host: '127.0.0.2', dir });
    coord = new Coordinator({
      ...DEFAULT_COORDINATOR,
      settings: { ...TINY_SETTINGS, stages: 2, seqLen: 16 },
      port: 0,
      host: '127.0.0.2',
      silent: true,
      clientDir: CLIENT_DIR,
      evalEvery: 0,
      maxIterations: 2,
      sampleEverySeconds: 0,
      tls: tls!.credentials,
    });
    const url = await coord.listen();
    expect(url).toMatch(/^https:\/\/127\.0\.0\.2:\d+$/);
    // Plain HTTP on the same port is sent to HTTPS.
    const redirect = await new Promise<{ status: number; location?: string }>((resolve, reject) =>
      request(`http://127.0.0.2:${new URL(url).port}/`, (res) => resolve({ status: res.statusCode ?? 0, location: res.headers.location })).on('error', reject).end(),
    );
    expect(redirect).toEqual({ status: 308, location: `${url}/` });

    browser.current = await chromium.launch(chromiumLaunchOptions([`--ignore-certificate-errors-spki-list=${spkiHash(tls!.credentials.cert)}`]));
    const page = await browser.current.newPage();
    const logs: string[] = [];
    page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
    await page.goto(`${url}/?autojoin=1`);
    const ctx = await page.evaluate(() => ({ secure: window.isSecureContext, gpu: 'gpu' in navigator, protocol: location.protocol, host: location.hostname }));
    expect(ctx).toEqual({ secure: true, gpu: true, protocol: 'https:', host: '127.0.0.2' });
    node = await startNodeVolunteer(url, { name: 'https-node', socketOptions: { ca: tls!.credentials.cert } });
    await waitUntil('the HTTPS tab to train 2 iterations', async () => ((await readStatus(page))?.iteration ?? 0) >= 2, {
      timeoutMs: 150_000,
      detail: async () => `status: ${JSON.stringify(await readStatus(page))}\n${logs.slice(-20).join('\n')}`,
    });
    const s = await readStatus(page);
    expect(s?.backend).toBe('webgpu');
    expect(s?.error).toBeNull();
    expect(coord.scheduler.history.length).toBeGreaterThanOrEqual(2);
  } finally {
    node?.kill();
    await browser.current?.close();
    await coord?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
