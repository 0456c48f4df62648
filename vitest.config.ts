import { configDefaults, defineConfig } from 'vitest/config';

const ALL = ['shared/**/*.test.ts', 'client/**/*.test.ts', 'coordinator/**/*.test.ts', 'scripts/**/*.test.ts', 'trainer/**/*.test.ts', 'experiments/**/*.test.ts', 'testing/**/*.test.ts', 'bench/**/*.test.ts', 'deploy/**/*.test.ts'];

/**
 * Tests whose assertions hold only with a core to themselves: measured link rates and delays
 * (emulated links, UDP proxies), WebRTC links that must open within their timeout, transfers
 * timed against a heartbeat, and the soak's heap. They run one at a time after the rest.
 */
const ALONE = [
  'testing/link-emulator.test.ts',
  'testing/udp-delay-proxy.test.ts',
  'testing/tcp-overlay.test.ts',
  'testing/udp-drops.test.ts',
  'shared/transport/peer-links.test.ts',
  'shared/transport/striped-link.test.ts',
  'trainer/sctp-burst.test.ts',
  'coordinator/tests/p2p*.test.ts',
  'coordinator/screening/p2p-audit.test.ts',
  'coordinator/tabs/bundle-push.test.ts',
  'coordinator/tabs/bundle-transfer.test.ts',
  'deploy/coturn/coturn.test.ts',
  'scripts/soak.test.ts',
];

// Unit and Node integration tests. Browser swarms live in e2e/ and run under Playwright.
// Two groups in one run (one summary): most files two at a time (on CI's 2 cores the suite is
// CPU-bound, and one worker left a core idle), then the ALONE files one at a time.
export default defineConfig({
  test: {
    testTimeout: 240_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // The soak measures the live heap after a full GC (scripts/soak.ts calls gc() when exposed).
    execArgv: ['--expose-gc'],
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'parallel', include: ALL, exclude: [...configDefaults.exclude, ...ALONE], maxWorkers: 2, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'alone', include: ALONE, maxWorkers: 1, sequence: { groupOrder: 1 } } },
    ],
  },
});
