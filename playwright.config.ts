import { defineConfig } from '@playwright/test';

import { chromiumLaunchOptions } from './coordinator/cli/chromium';

// Browser tests. Build first: `npx vite build && npx playwright test`.
// Uses the system Chromium (CHROMIUM_PATH, default /usr/bin/chromium); see
// scripts/ensure-chromium.sh. Never downloads a browser.
export default defineConfig({
  testDir: 'e2e',
  testMatch: '**/*.spec.ts',
  outputDir: 'test-results',
  workers: 1,
  fullyParallel: false,
  reporter: 'list',
  // Software WebGPU (SwiftShader) is slow: be generous.
  timeout: 180_000,
  expect: { timeout: 60_000 },
  retries: 0,
  use: {
    browserName: 'chromium',
    headless: true,
    launchOptions: chromiumLaunchOptions(),
    viewport: { width: 1024, height: 800 },
    actionTimeout: 30_000,
    navigationTimeout: 60_000,
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
  },
});
