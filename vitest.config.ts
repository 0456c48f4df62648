import { defineConfig } from 'vitest/config';

// Unit and Node integration tests. Browser swarms live in e2e/ and run under Playwright.
export default defineConfig({
  test: {
    include: ['shared/**/*.test.ts', 'client/**/*.test.ts', 'coordinator/**/*.test.ts', 'scripts/**/*.test.ts', 'trainer/**/*.test.ts', 'experiments/**/*.test.ts', 'testing/**/*.test.ts', 'bench/**/*.test.ts', 'deploy/**/*.test.ts'],
    testTimeout: 240_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // The soak measures the live heap after a full GC (scripts/soak.ts calls gc() when exposed).
    execArgv: ['--expose-gc'],
    reporters: ['default'],
  },
});
