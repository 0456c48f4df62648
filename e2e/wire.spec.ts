/**
 * Browser tabs behind emulated home links, with int8 wire frames (the default): WebGPU tabs
 * quantize in JS, so their loss curve follows the local trainer with the same encoding.
 */
import { test, expect } from './helpers';
import { trainLocal } from '../trainer/cli';
import { useNodeBackend } from '../trainer/node-backend';
import { wireOf } from '../shared/run-settings';

test('4 WebGPU tabs on emulated 50 Mbit/s, 10 ms links train with int8 frames like the local trainer', async ({ launchSwarm }) => {
  test.setTimeout(300_000);
  const N = 3;
  // Tabs behind link emulators load the page through the emulator's port: serve loopback names on any port.
  const swarm = await launchSwarm({ settings: { wire: 'int8' }, coordinator: { maxIterations: N, publicHosts: ['localhost', '127.0.0.1'] } });
  await swarm.openTabs(4, { upMbps: 50, downMbps: 50, latencyMs: 10 });
  await swarm.waitForAllStages();
  await swarm.waitForIteration(N, 240_000);
  const settings = swarm.coord.opts.settings;
  expect(wireOf(settings)).toBe('int8');
  const metrics = await swarm.metrics();
  expect(metrics.filter((m) => m.name === 'swarm_rejected_messages_total').reduce((a, m) => a + m.value, 0)).toBe(0);
  await useNodeBackend('wasm');
  const local = await trainLocal({ ...settings, steps: N, evalEvery: 1000, evalBatches: 1, swap: settings.recovery === 'checkfree+' });
  const swarmLosses = swarm.trainLosses().slice(0, N);
  console.log(`swarm (WebGPU, int8, emulated links) ${swarmLosses.map((l) => l.toFixed(5))} vs local (wasm, int8) ${local.trainLosses.map((l) => l.toFixed(5))}`);
  // WebGPU and wasm differ in float rounding (a quantization code can flip): a loose bound.
  for (let i = 0; i < N; i++) expect(Math.abs(swarmLosses[i]! - local.trainLosses[i]!) / local.trainLosses[i]!).toBeLessThan(2e-3);
});
