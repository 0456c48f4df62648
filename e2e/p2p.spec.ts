/**
 * `--transport p2p` in browsers: 4 volunteer tabs in headless Chromium (WebGPU on SwiftShader)
 * send activations and gradients to each other over WebRTC data channels owned by their pages
 * (the agent runs in a worker, which has no RTCPeerConnection: shared/transport/link-bridge.ts).
 * The coordinator must relay no activation or gradient. Chromium hides local addresses behind
 * mDNS names that headless tabs here cannot resolve, so that is turned off for this spec.
 * Build first: `npx vite build && npx playwright test e2e/p2p.spec.ts`.
 */
import { chromiumLaunchOptions } from '../coordinator/cli/chromium';
import { expect, metricValue, test, waitUntil } from './helpers';

const STAGES = 4;
test.use({ launchOptions: chromiumLaunchOptions(['--disable-features=WebRtcHideLocalIpsWithMdns']) });

test('4 WebGPU tabs train with frames peer to peer; the coordinator relays none', async ({ launchSwarm }) => {
  test.setTimeout(300_000);
  const ITERATIONS = 6;
  const swarm = await launchSwarm({ coordinator: { maxIterations: ITERATIONS, p2p: { transport: 'p2p' } } });
  await swarm.openTabs(STAGES);
  await swarm.waitForAllStages();
  await swarm.waitForIteration(ITERATIONS, 240_000);
  await waitUntil('the paused run', async () => swarm.coord.scheduler.iteration === ITERATIONS, { timeoutMs: 30_000, detail: () => swarm.describe() });
  const m = await swarm.metrics();
  const relayed = (metricValue(m, 'swarm_relay_bytes_total', { direction: 'forward' }) ?? 0) + (metricValue(m, 'swarm_relay_bytes_total', { direction: 'backward' }) ?? 0);
  const p2p = (metricValue(m, 'swarm_p2p_bytes_total', { direction: 'forward' }) ?? 0) + (metricValue(m, 'swarm_p2p_bytes_total', { direction: 'backward' }) ?? 0);
  const fallbacks = m.filter((x) => x.name === 'swarm_p2p_fallbacks_total').map((x) => `${x.labels.reason}=${x.value}`);
  console.log(`p2p: ${p2p} bytes tab to tab, ${relayed} relayed by the coordinator, fallbacks: ${fallbacks.join(' ') || 'none'}`);
  expect(p2p).toBeGreaterThan(0);
  // The target: the coordinator carries at most 1% of activation bytes.
  expect(relayed).toBeLessThanOrEqual(0.01 * (relayed + p2p));
  for (const l of swarm.trainLosses()) expect(Number.isFinite(l)).toBe(true);
});
