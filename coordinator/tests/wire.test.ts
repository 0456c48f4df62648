/**
 * Compressed relay (--wire): a Node swarm with int8 frames equals the local trainer with the same
 * encoding, and frames with a wrong encoding byte, truncated or negative scales or a mismatched
 * block count are rejected with their reason in swarm_rejected_messages_total (a non-finite scale
 * is 'nonfinite', which quarantines the tab: quarantine.test.ts with the int8 default).
 */
import { describe, it, expect } from 'vitest';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { startNodeVolunteer } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../../shared/run-settings.js';
import { trainLocal } from '../../trainer/cli.js';
import { useNodeBackend } from '../../trainer/node-backend.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';
import { checkRelayFrame, maxRelayFrameBytes } from '../screening/relay-check.js';
import { encodeTensorFrame, FrameError, wireFrameBytes, type FrameErrorReason } from '../../shared/protocol/index.js';
import type { VolunteerSocket } from '../../shared/volunteer/agent.js';

const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 2, recovery: 'checkfree', wire: 'int8' };

const harness = testSwarm();

/** Corruptions of an int8 frame [batch, seq, d] (rank 3: payload at 32) and the reason each must get. */
const CORRUPTIONS: [FrameErrorReason, (f: Uint8Array) => Uint8Array][] = [
  ['encoding', (f) => ((f[6] = 3), f)], // relabelled float16
  ['truncated', (f) => f.subarray(0, 32 + 8 + 6)], // ends inside the first scale
  // A negative scale (an offence); a NaN scale is 'nonfinite' and quarantines the tab (quarantine.test.ts).
  ['scale', (f) => (new DataView(f.buffer, f.byteOffset).setFloat32(32 + 8 + 4, -1, true), f)],
  ['blocks', (f) => (new DataView(f.buffer, f.byteOffset).setUint32(32 + 4, 1, true), f)],
];

describe('--wire int8', () => {
  it('checkRelayFrame: the run encoding decides the accepted dtype, block size and size limit', () => {
    const shape = [2, 64, 64];
    const data = Float32Array.from({ length: 2 * 64 * 64 }, (_, i) => Math.sin(i));
    const want = { kind: 'act' as const, iteration: 1, microbatch: 0, hop: 0, fromStage: 0, shape };
    const h = { ...want, toStage: -1, shape };
    const max = maxRelayFrameBytes(2, 64, 64, 'int8');
    expect(max).toBe(wireFrameBytes(shape, 'int8'));
    const reason = (f: () => void) => {
      try {
        f();
      } catch (e) {
        return (e as FrameError).reason;
      }
      return 'accepted';
    };
    const int8 = encodeTensorFrame({ ...h, dtype: 'int8' }, data);
    expect(reason(() => checkRelayFrame(int8, { ...want, wire: 'int8' }, max))).toBe('accepted');
    expect(reason(() => checkRelayFrame(encodeTensorFrame({ ...h, dtype: 'float32' }, data), { ...want, wire: 'int8' }, max))).toBe('encoding');
    expect(reason(() => checkRelayFrame(encodeTensorFrame({ ...h, dtype: 'int8', blockSize: 64 }, data), { ...want, wire: 'int8' }, 2 * max))).toBe('blocks');
    expect(reason(() => checkRelayFrame(int8, { ...want, wire: 'f32' }, maxRelayFrameBytes(2, 64, 64, 'f32')))).toBe('encoding');
    expect(reason(() => checkRelayFrame(int8, { ...want, wire: 'int8' }, max - 1))).toBe('size');
    for (const [r, corrupt] of CORRUPTIONS) expect(reason(() => checkRelayFrame(corrupt(int8.slice()), { ...want, wire: 'int8' }, max))).toBe(r);
    const nanScale = int8.slice();
    new DataView(nanScale.buffer).setFloat32(32 + 8, Number.NaN, true);
    expect(reason(() => checkRelayFrame(nanScale, { ...want, wire: 'int8' }, max))).toBe('nonfinite');
  });

  it('a Node swarm (two tabs on emulated links) matches the local trainer with the same encoding; corrupted frames are counted by reason', async () => {
    const N = 3;
    // Tabs behind the link emulator reach the coordinator through the emulator's own port: their
    // Host header names it, so the coordinator is told to serve loopback names on any port.
    harness.coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, evalEvery: N, evalBatches: 1, maxIterations: N, maxOffences: 100, publicHosts: ['localhost', '127.0.0.1'] });
    const url = await harness.coord.listen();
    // One tab sends a corrupted copy of its first few activation frames before the honest one.
    const pending = CORRUPTIONS.map(([, c]) => c);
    const wrapSocket = (socket: VolunteerSocket) => {
      const emit = socket.emit.bind(socket) as (event: string, ...args: unknown[]) => VolunteerSocket;
      (socket as unknown as { emit: typeof emit }).emit = (event, ...args) => {
        const corrupt = event === 'out' && args[1] instanceof Uint8Array && (args[0] as { dir: string }).dir === 'F' ? pending.shift() : undefined;
        if (corrupt) emit(event, args[0], corrupt((args[1] as Uint8Array).slice()));
        return emit(event, ...args);
      };
    };
    // Two tabs sit behind emulated home links (the numbers must not depend on the transport).
    const link = { upMbps: 50, downMbps: 100, latencyMs: 5 };
    for (let i = 0; i < 4; i++) harness.vols.push(await startNodeVolunteer(url, { name: `t${i}`, ...(i === 0 ? { wrapSocket } : {}), ...(i >= 2 ? { link } : {}) }));
    await until(() => harness.coord!.scheduler.iteration >= N && harness.coord!.scheduler.lastValLoss !== null, `${N} iterations`, 180_000);
    const swarm = harness.coord.scheduler.history.map((h) => h.trainLoss);
    for (const v of harness.vols.slice(2)) expect(v.link!.delivered.up).toBeGreaterThan(N * 2 * wireFrameBytes([2, 64, 64], 'int8'));
    const metrics = await harness.coord.metrics.text();
    for (const [r] of CORRUPTIONS) expect(metrics).toMatch(new RegExp(`swarm_rejected_messages_total\\{reason="${r}"\\} 1\\b`));
    // Relayed activation bytes are int8-sized: (S-1) hops of `microbatches` frames per iteration, plus token/target frames.
    const fwd = Number(/swarm_relay_bytes_total\{direction="forward"\} (\d+)/.exec(metrics)![1]);
    const act = wireFrameBytes([2, 64, 64], 'int8');
    expect(fwd).toBeLessThan(N * 2 * 3 * act * 1.2 + 1e5);

    await useNodeBackend('wasm');
    const local = await trainLocal({ ...settings, steps: N, evalEvery: N, evalBatches: 1, swap: false });
    const f32 = await trainLocal({ ...settings, wire: 'f32', steps: N, evalEvery: N, evalBatches: 1, swap: false });
    expect(swarm).toHaveLength(N);
    for (let i = 0; i < N; i++) expect(Math.abs(swarm[i]! - local.trainLosses[i]!) / local.trainLosses[i]!).toBeLessThan(1e-4);
    expect(Math.abs(harness.coord.scheduler.lastValLoss! - local.finalValLoss) / local.finalValLoss).toBeLessThan(1e-4);
    // The comparison is sensitive to the encoding: int8 and f32 runs do differ.
    expect(local.trainLosses.some((l, i) => Math.abs(l - f32.trainLosses[i]!) > 1e-6)).toBe(true);
  }, 240_000);
});
