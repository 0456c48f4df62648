/**
 * Headless Chromium volunteers for demos and e2e runs on machines without a GPU: each tab opens
 * the volunteer page with ?autojoin=1 and trains on WebGPU through SwiftShader. Uses Debian's
 * Chromium (CHROMIUM_PATH to override), never a downloaded browser.
 */
import { chromium, type Browser, type Page } from '@playwright/test';
import { chromiumLaunchOptions } from './chromium.js';
import { spkiHash } from '../gateway/tls.js';

export interface BrowserSwarm {
  browser: Browser;
  pages: Page[];
  /** Opens one more volunteer tab. */
  addTab(): Promise<Page>;
  close(): Promise<void>;
}

/** `opts.trustCertificate`: a PEM certificate the tabs trust (the coordinator's self-signed one under --tls). */
export async function launchBrowserTabs(url: string, n: number, opts: { query?: string; trustCertificate?: string } = {}): Promise<BrowserSwarm> {
  const trust = opts.trustCertificate ? [`--ignore-certificate-errors-spki-list=${spkiHash(opts.trustCertificate)}`] : [];
  const browser = await chromium.launch(chromiumLaunchOptions(trust));
  const pages: Page[] = [];
  const addTab = async () => {
    const page = await browser.newPage();
    await page.goto(`${url}/?autojoin=1${opts.query ? `&${opts.query}` : ''}`);
    pages.push(page);
    return page;
  };
  for (let i = 0; i < n; i++) await addTab();
  return { browser, pages, addTab, close: () => browser.close() };
}
