/**
 * A simulated volunteer in Node: the same VolunteerAgent the browser worker runs, on tfjs's wasm
 * (or cpu) backend, over a socket.io client. Used by tests, experiments, benchmarks and the soak.
 */
import { io, type ManagerOptions, type SocketOptions } from 'socket.io-client';
import type { Capabilities, OutMeta, TaskMeta } from '../shared/protocol/events.js';
import * as tf from '../shared/model/tf.js';
import { VolunteerAgent, type AgentOptions, type AgentStatus, type VolunteerSocket } from '../shared/volunteer/agent.js';
import type { ServerToVolunteer } from '../shared/protocol/events.js';
import { useNodeBackend } from '../trainer/node-backend.js';
import { startLinkEmulator, type LinkEmulator, type LinkSpec } from './link-emulator.js';
import { BridgedLinks, LinkHost } from '../shared/transport/link-bridge.js';
import { PeerLinks } from '../shared/transport/peer-links.js';
import { hopKey, markHop, taskInputKey } from '../shared/transport/hop-trace.js';
import { inspectTensorFrame } from '../shared/protocol/codec.js';
import type { NodeWebrtcStack } from '../trainer/node-webrtc.js';
import type { SctpBurst } from '../trainer/sctp-burst.js';

export interface NodeVolunteer {
  agent: VolunteerAgent;
  socket: VolunteerSocket;
  status(): AgentStatus;
  /** Graceful leave (tells the coordinator, hands the stage over if it is the last replica). */
  leave(): Promise<void>;
  /** Abrupt loss: the connection just drops, like a closed tab. */
  kill(): void;
  /** The emulated link this volunteer talks through (when `link` was given). */
  link: LinkEmulator | null;
}

export interface NodeVolunteerOptions {
  backend?: 'wasm' | 'cpu';
  /** Shown in the tab's agent string (tests find tabs by it). */
  name?: string;
  /** Builds the agent's stages (a test harness may wrap the Stage). */
  createStage?: AgentOptions['createStage'];
  /** Sees the socket before the agent does (a test harness may wrap what it sends). */
  wrapSocket?: (socket: VolunteerSocket) => void;
  /**
   * Benchmarks and tests only: every task takes at least this many ms of wall time (the result is
   * held back until then), so a slow device, or many volunteers on a 2-core machine, can be
   * simulated without the CPU being what is measured.
   */
  paceMs?: number;
  /** The agent's duty cycle (largest share of time computing, 0..1). */
  dutyCycle?: number;
  /** Extra hello capabilities (e.g. a browser id and nickname). */
  capabilities?: Partial<Capabilities>;
  /** socket.io client options (e.g. `ca` for a self-signed HTTPS coordinator, `localAddress`). */
  socketOptions?: Partial<ManagerOptions & SocketOptions> & { localAddress?: string };
  /** Talk to the coordinator through an emulated home link of its own (testing/link-emulator.ts). */
  link?: LinkSpec;
  /**
   * WebRTC for `--transport p2p|auto` (node-datachannel, ICE bound to 127.0.0.1 unless `rtcExtra`
   * says otherwise); false: the tab cannot open links and every frame goes through the relay.
   */
  webrtc?: boolean;
  /** Which Node WebRTC stack (trainer/node-webrtc.ts; default its DEFAULT_NODE_STACK). */
  stack?: NodeWebrtcStack;
  /** usrsctp's burst limits on libdatachannel (trainer/sctp-burst.ts; process-wide; default its DEFAULT_SCTP_BURST). */
  sctpBurst?: SctpBurst;
  rtcExtra?: RTCConfiguration;
  /**
   * Run the links as a browser tab does: the agent's BridgedLinks talks to a LinkHost through
   * structured-clone messages with transferred buffers, as the worker talks to its page.
   */
  bridgeLinks?: boolean;
}

/** BridgedLinks <-> LinkHost over asynchronous structured-clone messages (the worker/page boundary). */
function bridgedLinks(createPeerConnection: (c: RTCConfiguration) => RTCPeerConnection): NonNullable<AgentOptions['createLinks']> {
  return (deps) => {
    let worker: BridgedLinks | null = null;
    const page = new LinkHost((e, transfer) => setTimeout(() => worker?.handle(structuredClone(e, { transfer }))), createPeerConnection);
    worker = new BridgedLinks((r, transfer) => setTimeout(() => page.handle(structuredClone(r, { transfer }))), deps);
    return worker;
  };
}

/** A paced task's identity, from its meta or its result's. */
function paceKey(m: { attempt: number; iteration: number; mb: number; dir: string; hop: number }): string {
  return `${m.attempt}:${m.iteration}:${m.mb}:${m.dir}:${m.hop}`;
}

/** What paced links need from the pacer: wait for the paced task that produced a frame to end. */
interface Pacer {
  /** Resolves when the task that produced this frame has lasted `paceMs`, and lets the next task start. */
  sendReady(key: string): Promise<void>;
}

/**
 * Feeds the agent one task at a time (backward tasks first, as the agent itself orders them) and
 * holds each result until the task has lasted `paceMs`. A frame sent peer to peer waits for that
 * moment too (`sendReady`), so a paced p2p tab sends no earlier than a relayed one; from then on
 * the task is over and the next one starts while the frame travels (as a relayed frame travels
 * while the next task runs), and its `out` goes then too (an early report, held to the same
 * moment) or at once when it comes later (sent after the peer's acknowledgement).
 */
function paceTasks(socket: VolunteerSocket, paceMs: number): Pacer {
  type Task = Parameters<ServerToVolunteer['task']>;
  const queue: Task[] = [];
  let deliver: ((...t: Task) => void) | null = null;
  let busySince: number | null = null;
  let busyKey: string | null = null;
  /** Tasks whose frame went to a peer: paced already, their `out` is not held. */
  const released = new Set<string>();
  const next = () => {
    if (busySince !== null || !deliver || queue.length === 0) return;
    const b = queue.findIndex((t) => t[0].dir === 'B');
    const [task] = queue.splice(b >= 0 ? b : 0, 1);
    busySince = Date.now();
    busyKey = paceKey(task![0]);
    deliver(...task!);
  };
  const finish = () => {
    busySince = null;
    busyKey = null;
    next();
  };
  const on = socket.on.bind(socket) as (event: string, f: (...a: unknown[]) => void) => VolunteerSocket;
  (socket as unknown as { on: typeof on }).on = (event, f) => {
    if (event !== 'task') return on(event, f);
    deliver = f as (...t: Task) => void;
    return on('task', (...t: unknown[]) => {
      // Hop trace: the task arrived (the agent's own mark comes when the pacer hands it on).
      markHop('recv.task', () => taskInputKey(t[0] as TaskMeta, t[1] instanceof Uint8Array ? t[1] : null));
      queue.push(t as Task);
      next();
    });
  };
  const clear = () => {
    queue.length = 0;
    released.clear();
  };
  on('abandon', clear);
  on('connect', () => {
    if (!socket.recovered) clear();
  });
  const emit = socket.emit.bind(socket) as (event: string, ...args: unknown[]) => VolunteerSocket;
  (socket as unknown as { emit: typeof emit }).emit = (event, ...args) => {
    if (event === 'out' && released.delete(paceKey(args[0] as OutMeta))) return emit(event, ...args);
    if (event !== 'out' || busySince === null) return emit(event, ...args);
    const wait = Math.max(0, busySince + paceMs - Date.now());
    const key = busyKey;
    setTimeout(() => {
      const [meta, frame] = args as [OutMeta, Uint8Array | null];
      if (frame) markHop('paced', hopKey(meta.dir === 'B' ? 'grad' : 'act', meta.iteration, meta.mb, meta.hop));
      emit(event, ...args);
      // An early p2p report waits with its frame: whichever of the two ends the task ends it once.
      if (key !== null) released.delete(key);
      if (busyKey === key) finish();
    }, wait);
    return socket;
  };
  return {
    sendReady: async (key) => {
      if (busyKey !== key || busySince === null) return; // released already (a resent frame)
      await new Promise((r) => setTimeout(r, Math.max(0, busySince! + paceMs - Date.now())));
      if (busyKey !== key) return;
      released.add(key);
      finish();
    },
  };
}

/** PeerLinks whose sends wait for the paced task's end (see paceTasks). */
function pacedLinks(createPeerConnection: (c: RTCConfiguration) => RTCPeerConnection, pace: Pacer): NonNullable<AgentOptions['createLinks']> {
  return (deps) => {
    const links = new PeerLinks({ ...deps, createPeerConnection });
    const send = links.send.bind(links);
    links.send = async (peer, enveloped) => {
      // PeerFrames puts the pass's attempt (4 bytes, little-endian) in front of the frame.
      const attempt = new DataView(enveloped.buffer, enveloped.byteOffset, 4).getUint32(0, true);
      const { header } = inspectTensorFrame(enveloped.subarray(4));
      const key = paceKey({ attempt, iteration: header.iteration, mb: header.microbatch, dir: header.kind === 'grad' ? 'B' : 'F', hop: header.hop });
      await pace.sendReady(key);
      markHop('paced', hopKey(header.kind, header.iteration, header.microbatch, header.hop));
      return send(peer, enveloped);
    };
    return links;
  };
}

export async function startNodeVolunteer(url: string, opts: NodeVolunteerOptions = {}): Promise<NodeVolunteer> {
  const backend = await useNodeBackend(opts.backend ?? 'wasm');
  const link = opts.link ? await startLinkEmulator({ target: url, ...opts.link }) : null;
  const socket: VolunteerSocket = io(link ? link.url : url, { transports: ['websocket'], reconnection: true, forceNew: true, ...opts.socketOptions });
  const pace = opts.paceMs ? paceTasks(socket, opts.paceMs) : null;
  opts.wrapSocket?.(socket);
  const rtc = opts.webrtc === false ? null : await import('../trainer/node-webrtc.js');
  const createPc = rtc ? rtc.nodePeerConnectionFactory(opts.stack, opts.sctpBurst) : null;
  let last: AgentStatus | null = null;
  const agent = new VolunteerAgent(socket, {
    capabilities: { backend, adapter: null, throughputGflops: 1, agent: `node/${opts.name ?? 'sim'} tfjs-${tf.version_core}`, ...opts.capabilities },
    onStatus: (s) => (last = s),
    createStage: opts.createStage,
    ...(rtc && opts.bridgeLinks ? { createLinks: bridgedLinks(createPc!), rtcExtra: opts.rtcExtra ?? rtc.LOOPBACK_ONLY } : {}),
    ...(rtc && !opts.bridgeLinks && pace ? { createLinks: pacedLinks(createPc!, pace), rtcExtra: opts.rtcExtra ?? rtc.LOOPBACK_ONLY } : {}),
    ...(rtc && !opts.bridgeLinks && !pace ? { createPeerConnection: createPc!, rtcExtra: opts.rtcExtra ?? rtc.LOOPBACK_ONLY } : {}),
    ...(opts.dutyCycle !== undefined ? { dutyCycle: () => opts.dutyCycle! } : {}),
  });
  return {
    agent,
    socket,
    status: () => last ?? agent.status,
    link,
    leave: async () => {
      await agent.leave();
      // Let the leave message cross the emulated link before it goes away.
      if (link) setTimeout(() => void link.close(), 2 * opts.link!.latencyMs + 200).unref();
    },
    kill: () => {
      socket.io.reconnection(false);
      socket.io.engine?.close();
      agent.dispose();
      void link?.close();
    },
  };
}
