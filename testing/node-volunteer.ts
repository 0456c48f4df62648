/**
 * A simulated volunteer in Node: the same VolunteerAgent the browser worker runs, on tfjs's wasm
 * (or cpu) backend, over a socket.io client. Used by tests, experiments, benchmarks and the soak.
 */
import { io } from 'socket.io-client';
import * as tf from '../shared/model/tf.js';
import { VolunteerAgent, type AgentOptions, type AgentStatus, type VolunteerSocket } from '../shared/volunteer/agent.js';
import { useNodeBackend } from '../trainer/node-backend.js';
import { startLinkEmulator, type LinkEmulator, type LinkSpec } from './link-emulator.js';

export interface NodeVolunteer {
  agent: VolunteerAgent;
  socket: VolunteerSocket;
  status(): AgentStatus;
  /** Graceful leave (tells the coordinator). */
  leave(): void;
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
  /** Talk to the coordinator through an emulated home link of its own (testing/link-emulator.ts). */
  link?: LinkSpec;
}

export async function startNodeVolunteer(url: string, opts: NodeVolunteerOptions = {}): Promise<NodeVolunteer> {
  const backend = await useNodeBackend(opts.backend ?? 'wasm');
  const link = opts.link ? await startLinkEmulator({ target: url, ...opts.link }) : null;
  const socket: VolunteerSocket = io(link ? link.url : url, { transports: ['websocket'], reconnection: true, forceNew: true });
  opts.wrapSocket?.(socket);
  let last: AgentStatus | null = null;
  const agent = new VolunteerAgent(socket, {
    capabilities: { backend, adapter: null, throughputGflops: 1, agent: `node/${opts.name ?? 'sim'} tfjs-${tf.version_core}` },
    onStatus: (s) => (last = s),
    createStage: opts.createStage,
  });
  return {
    agent,
    socket,
    status: () => last ?? agent.status,
    link,
    leave: () => {
      agent.leave();
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
