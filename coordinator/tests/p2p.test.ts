/**
 * `--transport p2p`: activations and gradients go tab to tab over WebRTC (node-datachannel on
 * loopback), the coordinator sends tasks without frames and keeps the trust checks
 * (docs/p2p.md). The same run as swarm.test.ts's relay run must match the local trainer.
 */
import { describe, it, expect } from 'vitest';
import { io as ioClient } from 'socket.io-client';
import { Coordinator, DEFAULT_COORDINATOR, type CoordinatorOptions } from '../server.js';
import { startNodeVolunteer, type NodeVolunteerOptions } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../../shared/run-settings.js';
import { trainLocal } from '../../trainer/cli.js';
import { useNodeBackend } from '../../trainer/node-backend.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';
import { wireFrameBytes } from '../../shared/protocol/wire-encoding.js';
import { wireOf } from '../../shared/run-settings.js';
import type { VolunteerSocket } from '../../shared/volunteer/agent.js';
import { inspectTensorFrame } from '../../shared/protocol/codec.js';
import type { FrameLinks } from '../../shared/transport/link-bridge.js';
import type { FrameReceipt } from '../../shared/transport/peer-link.js';
import { LinkDownError } from '../../shared/transport/link-down-error.js';
import { MIN_PART_BYTES } from '../../shared/transport/striped-link.js';
import type { NodeVolunteer } from '../../testing/node-volunteer.js';
import type { RelayedPeerFrame } from '../../shared/protocol/late-fallback.js';

const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 2, recovery: 'checkfree' };

const harness = testSwarm();

async function startSwarm(s: RunSettings, extra: Partial<CoordinatorOptions>, vols: NodeVolunteerOptions[]) {
  const coord = (harness.coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings: s, port: 0, silent: true, evalEvery: 0, maxReplicas: 1, ...extra }));
  const url = await coord.listen();
  for (const [i, o] of vols.entries()) harness.vols.push(await startNodeVolunteer(url, { name: `t${i}`, ...o }));
  return { coord, url };
}

async function counter(coord: Coordinator, name: string): Promise<Map<string, number>> {
  const text = await coord.metrics.text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) out.set(m[1] ?? '', Number(m[2]));
  return out;
}

const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

/** The links a Node volunteer's agent owns (private: the tests wrap their sends). */
function linksOf(nv: NodeVolunteer): FrameLinks | null {
  return (nv.agent as unknown as { peers: { links: FrameLinks | null } }).peers.links;
}

type Header = ReturnType<typeof inspectTensorFrame>['header'];

/** Once every volunteer's links exist, their sends go through `hook` (the frame's header, the real send, and the peer / enveloped frame). */
async function hookSends(hook: (header: Header, send: () => Promise<FrameReceipt>, peer: string, enveloped: Uint8Array) => Promise<FrameReceipt>): Promise<void> {
  await until(() => harness.vols.length > 0 && harness.vols.every((nv) => linksOf(nv) !== null), 'links configured', 60_000);
  for (const nv of harness.vols) {
    const links = linksOf(nv)!;
    const send = links.send.bind(links);
    // PeerFrames puts the pass's attempt (4 bytes) in front of the frame.
    links.send = (peer, enveloped) => hook(inspectTensorFrame(enveloped.subarray(4)).header, () => send(peer, enveloped), peer, enveloped);
  }
}

/** Stage 1's activation of microbatch 0 in iteration 1 (its link carried frames in iteration 0). */
const watched = (h: Pick<Header, 'kind' | 'iteration' | 'microbatch' | 'fromStage'>) => h.kind === 'act' && h.iteration === 1 && h.microbatch === 0 && h.fromStage === 1;

describe('--transport p2p', () => {
  it('matches the local trainer with activations and gradients peer to peer; the coordinator relays none', async () => {
    const N = 4;
    const { coord } = await startSwarm(settings, { maxIterations: N, p2p: { transport: 'p2p' } }, [{}, {}, {}, {}]);
    // The early report: the watched frame's acknowledgement reaches its sender 1 s late, and its
    // receiver's task still goes out as soon as the frame is handed to the link.
    let ackAt = 0;
    let taskAt = 0;
    for (const nv of harness.vols) nv.socket.on('task', (meta) => void (meta.dir === 'F' && meta.inputFrom && watched({ kind: meta.inputFrom.kind, iteration: meta.iteration, microbatch: meta.mb, fromStage: meta.inputFrom.fromStage }) && (taskAt = Date.now())));
    await hookSends((header, send) =>
      watched(header)
        ? send().then(async (r) => {
            await new Promise((w) => setTimeout(w, 1000));
            ackAt = Date.now();
            return r;
          })
        : send(),
    );
    await until(() => coord.scheduler.iteration >= N, `${N} iterations`, 180_000);
    await until(() => ackAt > 0, 'the late acknowledgement', 10_000);
    expect(taskAt).toBeGreaterThan(0);
    expect(taskAt).toBeLessThan(ackAt);
    const swarm = coord.scheduler.history.map((h) => h.trainLoss);
    await useNodeBackend('wasm');
    const local = await trainLocal({ ...settings, steps: N, evalEvery: 1000, evalBatches: 1, swap: false });
    expect(swarm).toHaveLength(N);
    for (let i = 0; i < N; i++) expect(Math.abs(swarm[i]! - local.trainLosses[i]!) / local.trainLosses[i]!).toBeLessThan(1e-4);
    const relay = await counter(coord, 'swarm_relay_bytes_total');
    const p2p = await counter(coord, 'swarm_p2p_bytes_total');
    const fallbacks = await counter(coord, 'swarm_p2p_fallbacks_total');
    // Per iteration: 2 microbatches x 3 activation hops and 3 gradient hops, each one [2, seq, d] frame in the run's encoding.
    const frame = wireFrameBytes([settings.batch, 64, 64], wireOf(settings));
    expect(p2p.get('{direction="forward"}')).toBe(N * 2 * 3 * frame);
    expect(p2p.get('{direction="backward"}')).toBe(N * 2 * 3 * frame);
    expect(relay.get('{direction="forward"}') ?? 0).toBe(0);
    expect(relay.get('{direction="backward"}') ?? 0).toBe(0);
    expect(sum(fallbacks)).toBe(0);
  });

  it('--p2p-stripes 2: every link is two peer connections, each frame cut in two (f32 frames of 64 KiB), direct and page-owned links alike; still matches the local trainer', async () => {
    const N = 2;
    const s: RunSettings = { ...settings, batch: 4, wire: 'f32' };
    const { coord } = await startSwarm(s, { maxIterations: N, p2p: { transport: 'p2p', stripes: 2 } }, [{}, { bridgeLinks: true }, {}, { bridgeLinks: true }]);
    const stripes: unknown[] = [];
    for (const nv of harness.vols) nv.socket.on('p2p-signal', (m) => void (m.signal.type === 'offer' || m.signal.type === 'answer' ? stripes.push(m.signal.stripe) : 0));
    await until(() => coord.scheduler.iteration >= N, `${N} iterations`, 180_000);
    const swarm = coord.scheduler.history.map((h) => h.trainLoss);
    await useNodeBackend('wasm');
    const local = await trainLocal({ ...s, steps: N, evalEvery: 1000, evalBatches: 1, swap: false });
    for (let i = 0; i < N; i++) expect(Math.abs(swarm[i]! - local.trainLosses[i]!) / local.trainLosses[i]!).toBeLessThan(1e-4);
    // Three pairs, each an offer and an answer per stripe (more if a link was opened again).
    expect(new Set(stripes)).toEqual(new Set([0, 1]));
    expect(stripes.filter((k) => k === 1).length).toBeGreaterThanOrEqual(6);
    const frame = wireFrameBytes([s.batch, 64, 64], 'f32');
    expect(frame).toBeGreaterThanOrEqual(2 * MIN_PART_BYTES);
    const p2p = await counter(coord, 'swarm_p2p_bytes_total');
    expect(p2p.get('{direction="forward"}')).toBe(N * 2 * 3 * frame);
    expect(p2p.get('{direction="backward"}')).toBe(N * 2 * 3 * frame);
    const relay = await counter(coord, 'swarm_relay_bytes_total');
    expect((relay.get('{direction="forward"}') ?? 0) + (relay.get('{direction="backward"}') ?? 0)).toBe(0);
    expect(sum(await counter(coord, 'swarm_p2p_fallbacks_total'))).toBe(0);
  });

  it('gives each tab its ICE servers with its own TURN credentials and forwards signals only between paired tabs', async () => {
    const { coord, url } = await startSwarm(
      settings,
      { maxIterations: 1, p2p: { transport: 'auto', iceServers: ['stun:stun.example.org:3478', 'turn:turn.example.org:3478'], turnSecret: 's3cret', turnTtlS: 600 } },
      [{}, {}, {}, {}],
    );
    await until(() => coord.scheduler.iteration >= 1, 'one iteration (pairs routed)', 120_000);
    const raw = ioClient(url, { transports: ['websocket'], forceNew: true });
    const configs: { transport: string; rtc: RTCConfiguration }[] = [];
    const rejected: string[] = [];
    raw.on('p2p_config' as never, (c: (typeof configs)[number]) => void configs.push(c));
    raw.on('rejected' as never, (r: { reason: string }) => void rejected.push(r.reason));
    await new Promise<void>((r) => raw.on('connect', () => r()));
    let id = '';
    raw.on('welcome' as never, (w: { volunteerId: string }) => void (id = w.volunteerId));
    raw.emit('hello' as never, { backend: 'cpu', adapter: null, throughputGflops: 1, agent: 'raw', webrtc: true } as never, (() => {}) as never);
    await until(() => configs.length === 1 && id !== '', 'p2p config', 10_000);
    expect(configs[0]!.transport).toBe('auto');
    const [stun, turn] = configs[0]!.rtc.iceServers!;
    expect(stun).toEqual({ urls: 'stun:stun.example.org:3478' });
    expect(turn!.urls).toBe('turn:turn.example.org:3478');
    expect(turn!.username).toMatch(new RegExp(`^\\d+\\.${id}$`));
    expect(Number(turn!.username!.split('.')[0]) - Date.now() / 1000).toBeGreaterThan(590);
    // A spare never exchanged frames with anyone: its signals are not forwarded (counted, no offence).
    const victim = coord.registry.all().find((v) => v.stage === 1)!;
    const heard: unknown[] = [];
    harness.vols.forEach((nv) => nv.socket.on('p2p-signal', (s) => heard.push(s)));
    raw.emit('p2p-signal' as never, { to: victim.id, signal: { type: 'connect', link: 'abcdefgh12' } } as never);
    // Malformed: an offence.
    raw.emit('p2p-signal' as never, { to: victim.id, signal: { type: 'offer', link: 'abcdefgh12', sdp: 'not sdp' } } as never);
    await until(() => rejected.includes('schema'), 'schema reject', 10_000);
    const counts = await counter(coord, 'swarm_rejected_messages_total');
    expect(counts.get('{reason="p2p_signal_pair"}')).toBe(1);
    expect(heard).toHaveLength(0);
    // Two tabs the coordinator routes frames between may signal each other.
    expect(coord.p2pRoutes.mayTalk(coord.stages.replicas(0)[0]!.id, coord.stages.replicas(1)[0]!.id)).toBe(true);
    expect(coord.p2pRoutes.mayTalk(coord.stages.replicas(0)[0]!.id, coord.stages.replicas(3)[0]!.id)).toBe(false);
    // A late fallback whose frame is not binary is a schema offence (late-fallback.test.ts checks its fields).
    const schemaRejects = () => rejected.filter((r) => r === 'schema').length;
    const before = schemaRejects();
    raw.emit('p2p_fallback' as never, { attempt: 0, iteration: 0, mb: 0, dir: 'F', hop: 0, reason: 'silent' } as never, 'not binary' as never);
    await until(() => schemaRejects() === before + 1, 'a schema reject', 10_000);
    // A stripe index in a run without --p2p-stripes: an offence too.
    raw.emit('p2p-signal' as never, { to: victim.id, signal: { type: 'candidate', link: 'abcdefgh12', stripe: 0, candidate: '', sdpMid: '0', sdpMLineIndex: 0 } } as never);
    await until(() => schemaRejects() === before + 2, 'a stripe index rejected', 10_000);
    raw.close();
  });
});

describe('--transport p2p: browser tabs', () => {
  it('links owned by the page, driven from the worker over postMessage-style messages (BridgedLinks <-> LinkHost), train as the direct ones; a link that breaks after the early report sends its frame through the coordinator', async () => {
    const N = 3;
    const { coord } = await startSwarm(settings, { maxIterations: N, p2p: { transport: 'p2p' } }, [0, 1, 2, 3].map(() => ({ bridgeLinks: true })));
    // The watched frame is reported when handed over, then its link goes silent without delivering it.
    const relayed: RelayedPeerFrame[] = [];
    for (const nv of harness.vols) nv.socket.on('p2p_relayed', (info) => void relayed.push(info));
    await hookSends((header, send, peer, enveloped) =>
      watched(header) ? new Promise<FrameReceipt>((_, reject) => setTimeout(() => reject(new LinkDownError(peer, 'silent', 'test: silent after the early report', [enveloped])), 50)) : send(),
    );
    await until(() => coord.scheduler.iteration >= N, `${N} iterations`, 180_000);
    const sender = coord.stages.owner(1)!.id;
    expect(relayed).toEqual([{ from: sender, kind: 'act', attempt: expect.any(Number), iteration: 1, mb: 0, hop: 1 }]);
    expect((await counter(coord, 'swarm_p2p_fallbacks_total')).get('{reason="silent"}')).toBe(1);
    const swarm = coord.scheduler.history.map((h) => h.trainLoss);
    await useNodeBackend('wasm');
    const local = await trainLocal({ ...settings, steps: N, evalEvery: 1000, evalBatches: 1, swap: false });
    for (let i = 0; i < N; i++) expect(Math.abs(swarm[i]! - local.trainLosses[i]!) / local.trainLosses[i]!).toBeLessThan(1e-4);
    const frame = wireFrameBytes([settings.batch, 64, 64], wireOf(settings));
    const p2p = await counter(coord, 'swarm_p2p_bytes_total');
    // Every frame crossed once: the watched one through the coordinator, the rest peer to peer.
    expect(p2p.get('{direction="forward"}')).toBe(N * 2 * 3 * frame - frame);
    expect(p2p.get('{direction="backward"}')).toBe(N * 2 * 3 * frame);
    expect((await counter(coord, 'swarm_relay_bytes_total')).get('{direction="forward"}') ?? 0).toBe(frame);
  });
});

describe('--transport p2p: trust', () => {
  it('a tab inflating the activations it sends peer to peer is quarantined from its receiver\'s norm reports', async () => {
    const { coord, url } = await startSwarm({ ...settings }, { graceMs: 200, p2p: { transport: 'p2p' } }, []);
    const tabs = await harness.poisonable(url, ['h0', 'h1', 'h2', 'h3', 'spare']);
    await until(() => coord.scheduler.iteration >= 7, 'a norm history', 180_000);
    const culprit = tabs.find((t) => t.status().volunteerId === coord.stages.owner(1)!.id)!;
    const after = [2, 3].map((st) => coord.stages.owner(st)!.id);
    culprit.setPoison('inflate-sent-acts');
    await until(() => coord.events.list('quarantine').length >= 1, 'quarantine', 120_000);
    const q = coord.events.list('quarantine');
    expect(q).toHaveLength(1);
    expect(q[0]!.data).toMatchObject({ stage: 1, volunteer: culprit.status().volunteerId });
    expect(q[0]!.message).toMatch(/relayed activations to stage 2 .*x its recent median/);
    // The inflated frames never crossed the coordinator: the receiver's reported norm raised the
    // suspicion, the spare became the culprit's sibling (audit-siblings.ts), and its re-run of the
    // hop, compared by norm with the receiver's report, convicted the sender.
    expect(q[0]!.message).toMatch(/audit: the sibling's re-run differs/);
    expect((await counter(coord, 'swarm_screening_audits_total')).get('{verdict="mismatch"}')).toBeGreaterThanOrEqual(1);
    await until(() => coord.recovery.done.length === 1, 'stage 1 rebuilt', 120_000);
    expect([2, 3].map((st) => coord.stages.owner(st)!.id)).toEqual(after);
  });

  it('a sender that reports a digest other than what it sent is caught by the audit and dropped; its receiver is not', async () => {
    // The tab on stage 1 lies about every frame it sends (the report, not the frame).
    const lie = (socket: VolunteerSocket) => {
      const emit = socket.emit.bind(socket) as (event: string, ...args: unknown[]) => VolunteerSocket;
      (socket as unknown as { emit: typeof emit }).emit = (event, ...args) => {
        const meta = args[0] as { sent?: { digest: string } };
        if (event === 'out' && meta?.sent) meta.sent.digest = '0'.repeat(64);
        return emit(event, ...args);
      };
    };
    const { coord } = await startSwarm(settings, { p2p: { transport: 'p2p' } }, [{}, { wrapSocket: lie }, {}, {}, {}]);
    const liar = () => coord.registry.all().find((v) => v.caps.agent.includes('/t1 '));
    const liarId = (await (async () => {
      await until(() => liar() !== undefined, 'liar registered', 30_000);
      return liar()!.id;
    })());
    await until(() => coord.events.list('leave').some((e) => e.message.includes(liarId) && e.message.includes('misbehaved')), 'the liar dropped', 120_000);
    const audits = await counter(coord, 'swarm_p2p_audits_total');
    expect(audits.get('{result="mismatch"}')).toBeGreaterThanOrEqual(3);
    expect(audits.get('{result="sender_guilty"}')).toBeGreaterThanOrEqual(3);
    expect(audits.get('{result="receiver_guilty"}') ?? 0).toBe(0);
    const it0 = coord.scheduler.iteration;
    await until(() => coord.scheduler.iteration >= it0 + 2, 'training continues', 120_000);
    expect(coord.events.list('leave').filter((e) => e.message.includes('misbehaved'))).toHaveLength(1);
  });
});

describe('--transport auto: fallback', () => {
  it('a pair that cannot open a link falls back to the relay within 5 s, backs off, loses nothing and still matches the local trainer', async () => {
    // The tab on stage 1 never lets a signal out: every link to or from it fails to open.
    const mute = (socket: VolunteerSocket) => {
      const emit = socket.emit.bind(socket) as (event: string, ...args: unknown[]) => VolunteerSocket;
      (socket as unknown as { emit: typeof emit }).emit = (event, ...args) => (event === 'p2p-signal' ? socket : emit(event, ...args));
    };
    const N = 4;
    const t0 = Date.now();
    const { coord } = await startSwarm(settings, { maxIterations: N, p2p: { transport: 'auto' } }, [{}, { wrapSocket: mute }, {}, {}]);
    await until(() => (coord.p2pRoutes.fallbacks.get('open-timeout') ?? 0) > 0, 'a fallback', 60_000);
    const firstFallback = Date.now() - t0;
    await until(() => coord.scheduler.iteration >= N, `${N} iterations`, 180_000);
    const swarm = coord.scheduler.history.map((h) => h.trainLoss);
    await useNodeBackend('wasm');
    const local = await trainLocal({ ...settings, steps: N, evalEvery: 1000, evalBatches: 1, swap: false });
    for (let i = 0; i < N; i++) expect(Math.abs(swarm[i]! - local.trainLosses[i]!) / local.trainLosses[i]!).toBeLessThan(1e-4);
    // The open timeout is 5 s; the tabs' start and the first hops come before it.
    expect(firstFallback).toBeLessThan(5000 + 4000);
    const frame = wireFrameBytes([settings.batch, 64, 64], wireOf(settings));
    const relay = await counter(coord, 'swarm_relay_bytes_total');
    const p2p = await counter(coord, 'swarm_p2p_bytes_total');
    const fallbacks = await counter(coord, 'swarm_p2p_fallbacks_total');
    // Every frame crossed exactly once: stage 0 <-> 1 and 1 <-> 2 through the relay, 2 <-> 3 peer to peer.
    expect(relay.get('{direction="forward"}')).toBe(N * 2 * 2 * frame);
    expect(relay.get('{direction="backward"}')).toBe(N * 2 * 2 * frame);
    expect(p2p.get('{direction="forward"}')).toBe(N * 2 * frame);
    expect(p2p.get('{direction="backward"}')).toBe(N * 2 * frame);
    // Each blocked pair failed once per direction that tried, then stayed relay-only (back-off).
    expect(fallbacks.get('{reason="open-timeout"}')).toBeLessThanOrEqual(4);
    expect(fallbacks.get('{reason="backoff"}')).toBeGreaterThan(0);
    expect(coord.p2pRoutes.backedOff().length).toBe(2);
  }, 240_000);
});
