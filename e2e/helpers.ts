/**
 * Plumbing for the swarm end-to-end tests: a real coordinator in the test process (HTTP +
 * socket.io on a free port, serving the built client from dist/client) and volunteer tabs in
 * Debian Chromium (WebGPU on SwiftShader, see coordinator/chromium.ts via playwright.config.ts), plus
 * readers for what each side reports: the tabs' `window.__volunteerStatus`, the coordinator's
 * state, and /metrics.
 *
 * Software WebGPU is slow, so every run uses tiny settings (TINY_SETTINGS). Measured on a 2-core
 * machine: ~15-25 s for the first iteration (shader compilation in every tab), then ~3 s per
 * iteration; a tab that takes over a stage compiles its shaders again (~10-20 s).
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { test as base, type Browser, type Page } from '@playwright/test';

import { Coordinator, DEFAULT_COORDINATOR, type CoordinatorOptions } from '../coordinator/server';
import type { RunSettings } from '../shared/run-settings';
import { startLinkEmulator, type LinkEmulator, type LinkSpec } from '../testing/link-emulator';
import type { VolunteerStatus } from '../client/src/messages';

export { expect } from '@playwright/test';

/** The built client the coordinator serves (`npx vite build`); E2E_CLIENT_DIR overrides it. */
export const CLIENT_DIR = process.env.E2E_CLIENT_DIR || fileURLToPath(new URL('../dist/client', import.meta.url));

/** Tiny enough that one iteration takes a few seconds on SwiftShader with 4-6 tabs. */
export const TINY_SETTINGS: RunSettings = {
  preset: 'tiny',
  stages: 4,
  seqLen: 32,
  batch: 1,
  microbatches: 2,
  lr: 3e-3,
  seed: 1234,
  recovery: 'checkfree+',
};

export interface SwarmOptions {
  settings?: Partial<RunSettings>;
  coordinator?: Partial<Omit<CoordinatorOptions, 'settings'>>;
}

/** A loss a tab reported for one microbatch (what the head computed, before averaging). */
export interface MicrobatchLoss {
  attempt: number;
  iteration: number;
  mb: number;
  loss: number;
  /** Coordinator-side volunteer id of the tab that sent it. */
  volunteerId: string | null;
}

export interface TabStatus {
  page: Page;
  status: VolunteerStatus | null;
}

/** The latest status snapshot the tab's worker posted (null before the first one). */
export function readStatus(page: Page): Promise<VolunteerStatus | null> {
  return page.evaluate(() => (window as unknown as { __volunteerStatus?: VolunteerStatus }).__volunteerStatus ?? null);
}

/** Polls `cond` until it holds; on timeout throws with `what` and the current `detail()`. */
export async function waitUntil(
  what: string,
  cond: () => boolean | Promise<boolean>,
  opts: { timeoutMs: number; pollMs?: number; detail?: () => string | Promise<string> },
): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    if (await cond()) return;
    if (Date.now() - t0 > opts.timeoutMs) {
      const detail = opts.detail ? `\n${await opts.detail()}` : '';
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(opts.pollMs ?? 250);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** One sample of the Prometheus text format. */
export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text exposition (comments skipped). */
export function parseMetrics(text: string): MetricSample[] {
  const out: MetricSample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of `name` with exactly these labels, or undefined when absent. */
export function metricValue(samples: readonly MetricSample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels);
  return samples.find(
    (s) => s.name === name && Object.keys(s.labels).length === want.length && want.every(([k, v]) => s.labels[k] === v),
  )?.value;
}

/** A coordinator plus the volunteer tabs a test opened against it. */
export class Swarm {
  readonly pages: Page[] = [];
  /** Console output of every tab (and its worker), prefixed with the tab number. */
  readonly logs: string[] = [];
  /** Every loss a tab reported (train forward passes only), in arrival order. */
  readonly microbatchLosses: MicrobatchLoss[] = [];
  private opened = 0;
  /** Emulated links of tabs opened behind one (closed with the swarm). */
  private links: LinkEmulator[] = [];

  private constructor(
    private readonly browser: Browser,
    readonly coord: Coordinator,
    readonly url: string,
  ) {}

  static async start(browser: Browser, opts: SwarmOptions = {}): Promise<Swarm> {
    const coord = new Coordinator({
      ...DEFAULT_COORDINATOR,
      port: 0,
      host: '127.0.0.1',
      silent: true,
      clientDir: CLIENT_DIR,
      evalEvery: 0,
      graceMs: 300,
      // One tab per stage unless a spec asks for groups: extra tabs are spares.
      maxReplicas: 1,
      ...opts.coordinator,
      settings: { ...TINY_SETTINGS, ...opts.settings },
    });
    const url = await coord.listen();
    const swarm = new Swarm(browser, coord, url);
    swarm.recordMicrobatchLosses();
    return swarm;
  }

  /** Listens beside the coordinator to every tab's results and keeps the losses they carry. */
  private recordMicrobatchLosses(): void {
    this.coord.io.on('connection', (socket) => {
      socket.on('out', (meta) => {
        if (meta?.dir !== 'F' || typeof meta.loss !== 'number') return;
        const v = this.coord.registry.all().find((x) => x.socket.id === socket.id);
        this.microbatchLosses.push({ attempt: meta.attempt, iteration: meta.iteration, mb: meta.mb, loss: meta.loss, volunteerId: v?.id ?? null });
      });
    });
  }

  /**
   * Opens `n` volunteer tabs at /?autojoin=1, one after the other. With `link`, every tab gets its
   * own emulated home link (testing/link-emulator.ts): it loads the page and talks to the
   * coordinator through its proxy's port.
   */
  async openTabs(n: number, link?: LinkSpec): Promise<Page[]> {
    const added: Page[] = [];
    for (let i = 0; i < n; i++) {
      const tab = this.opened++;
      const page = await this.browser.newPage();
      page.on('console', (m) => void this.logs.push(`[tab${tab} ${m.type()}] ${m.text()}`));
      page.on('pageerror', (e) => void this.logs.push(`[tab${tab} pageerror] ${e.message}`));
      const emu = link ? await startLinkEmulator({ target: this.url, ...link }) : null;
      if (emu) this.links.push(emu);
      await page.goto(`${emu ? emu.url : this.url}/?autojoin=1`);
      this.pages.push(page);
      added.push(page);
    }
    return added;
  }

  /** Closes a tab like a volunteer would (no graceful Stop click) and forgets it. */
  async closeTab(page: Page): Promise<void> {
    this.pages.splice(this.pages.indexOf(page), 1);
    await page.close();
  }

  /** Status of every open tab. */
  async statuses(): Promise<TabStatus[]> {
    return Promise.all(this.pages.map(async (page) => ({ page, status: await readStatus(page).catch(() => null) })));
  }

  /** The open tab whose worker reports `stage` (undefined when none does). */
  async pageForStage(stage: number | 'spare'): Promise<Page | undefined> {
    return (await this.statuses()).find((t) => t.status?.stage === stage)?.page;
  }

  /** Waits until every stage is served and training has started (first iteration may still run). */
  async waitForAllStages(timeoutMs = 120_000): Promise<void> {
    const S = this.coord.scheduler.nStages;
    await waitUntil(
      `all ${S} stages assigned to tabs that report them`,
      async () => {
        const stages = new Set((await this.statuses()).map((t) => t.status?.stage));
        return Array.from({ length: S }, (_, s) => s).every((s) => stages.has(s));
      },
      { timeoutMs, pollMs: 500, detail: () => this.describe() },
    );
  }

  /** Waits until the coordinator has completed `n` iterations. */
  async waitForIteration(n: number, timeoutMs: number): Promise<void> {
    await waitUntil(`iteration ${n}`, () => this.coord.scheduler.iteration >= n, { timeoutMs, detail: () => this.describe() });
  }

  /** Fetches and parses /metrics over HTTP, as Prometheus would. */
  async metrics(): Promise<MetricSample[]> {
    const res = await fetch(`${this.url}/metrics`);
    if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
    return parseMetrics(await res.text());
  }

  /** Train losses of completed iterations, oldest first. */
  trainLosses(): number[] {
    return this.coord.scheduler.history.map((h) => h.trainLoss);
  }

  /** One-paragraph state of the run and every tab, for timeouts and failure attachments. */
  async describe(): Promise<string> {
    const s = this.coord.scheduler.status();
    const tabs = (await this.statuses()).map(({ status: t }, i) =>
      t ? `tab${i}: ${t.connection} stage=${t.stage} it=${t.iteration} backend=${t.backend} loss=${t.lastLoss?.toFixed(4) ?? '-'} run=${t.run?.state ?? '-'}/${t.run?.needed ?? '-'}${t.error ? ` error=${t.error}` : ''}` : `tab${i}: no status`,
    );
    return [`coordinator: ${JSON.stringify(s)} vacant=[${Array.from({ length: this.coord.stages.nStages }, (_, s) => s).filter((s) => this.coord.stages.isVacant(s))}]`, ...tabs].join('\n');
  }

  /** Everything useful after a failure: state, events, losses, tab logs. */
  async diagnostics(): Promise<string> {
    const events = this.coord.events.list().map((e) => `${new Date(e.time).toISOString()} ${e.kind}: ${e.message}`);
    const history = this.coord.scheduler.history.map((h) => `it ${h.iteration}: loss ${h.trainLoss.toFixed(4)} (${h.seconds.toFixed(1)} s)`);
    return [await this.describe(), '', '# events', ...events, '', '# history', ...history, '', '# tab logs', ...this.logs.slice(-400)].join('\n');
  }

  async close(): Promise<void> {
    await Promise.all(this.pages.splice(0).map((p) => p.close().catch(() => {})));
    await Promise.all(this.links.splice(0).map((l) => l.close()));
    await this.coord.close();
  }
}

/** Iterations seen over time: the coordinator's counter and each tab's, sampled in the background. */
export class IterationWatch {
  /** The coordinator's completed-iteration counter, every `everyMs`. */
  readonly coordinator: number[] = [];
  /** Each tab's reported iteration (nulls skipped), about once a second. */
  readonly tabs = new Map<Page, number[]>();
  private timers: NodeJS.Timeout[] = [];

  constructor(swarm: Swarm, everyMs = 100) {
    this.timers.push(setInterval(() => this.coordinator.push(swarm.coord.scheduler.iteration), everyMs));
    let busy = false;
    this.timers.push(
      setInterval(() => {
        if (busy) return;
        busy = true;
        void swarm
          .statuses()
          .then((tabs) => {
            for (const { page, status } of tabs) {
              if (status?.iteration == null) continue;
              if (!this.tabs.has(page)) this.tabs.set(page, []);
              this.tabs.get(page)!.push(status.iteration);
            }
          })
          .finally(() => (busy = false));
      }, 1000),
    );
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
  }
}

/** True when no element is smaller than the one before it. */
export function nonDecreasing(xs: readonly number[]): boolean {
  return xs.every((x, i) => i === 0 || x >= xs[i - 1]!);
}

/**
 * `test` with a `launchSwarm` fixture: starts a coordinator (tiny settings unless overridden),
 * closes its tabs and the coordinator after the test, and attaches diagnostics when it fails.
 */
export const test = base.extend<{ launchSwarm: (opts?: SwarmOptions) => Promise<Swarm> }>({
  launchSwarm: async ({ browser }, use, testInfo) => {
    const started: Swarm[] = [];
    await use(async (opts) => {
      const swarm = await Swarm.start(browser, opts);
      started.push(swarm);
      return swarm;
    });
    for (const swarm of started) {
      if (testInfo.status !== testInfo.expectedStatus) {
        const path = testInfo.outputPath(`swarm-diagnostics-${started.indexOf(swarm)}.txt`);
        writeFileSync(path, await swarm.diagnostics().catch((e: Error) => e.message));
        await testInfo.attach('swarm-diagnostics', { path, contentType: 'text/plain' });
      }
      await swarm.close();
    }
  },
});
