/**
 * A simulated volunteer in Node: the same VolunteerAgent the browser worker runs, on tfjs's wasm
 * (or cpu) backend, over a socket.io client. Used by tests, experiments, benchmarks and the soak.
 */
import { io, type ManagerOptions, type SocketOptions } from 'socket.io-client';
import type { Capabilities } from '../shared/protocol/events.js';
import * as tf from '../shared/model/tf.js';
import { VolunteerAgent, type AgentOptions, type AgentStatus, type VolunteerSocket } from '../shared/volunteer/agent.js';
import { useNodeBackend } from '../trainer/node-backend.js';

export interface NodeVolunteer {
  agent: VolunteerAgent;
  socket: VolunteerSocket;
  status(): AgentStatus;
  /** Graceful leave (tells the coordinator). */
  leave(): void;
  /** Abrupt loss: the connection just drops, like a closed tab. */
  kill(): void;
}

export interface NodeVolunteerOptions {
  backend?: 'wasm' | 'cpu';
  /** Shown in the tab's agent string (tests find tabs by it). */
  name?: string;
  /** Builds the agent's stages (a test harness may wrap the Stage). */
  createStage?: AgentOptions['createStage'];
  /** Sees the socket before the agent does (a test harness may wrap what it sends). */
  wrapSocket?: (socket: VolunteerSocket) => void;
  /** The agent's duty cycle (largest share of time computing, 0..1). */
  dutyCycle?: number;
  /** Extra hello capabilities (e.g. a browser id and nickname). */
  capabilities?: Partial<Capabilities>;
  /** socket.io client options (e.g. `ca` for a self-signed HTTPS coordinator, `localAddress`). */
  socketOptions?: Partial<ManagerOptions & SocketOptions> & { localAddress?: string };
}

export async function startNodeVolunteer(url: string, opts: NodeVolunteerOptions = {}): Promise<NodeVolunteer> {
  const backend = await useNodeBackend(opts.backend ?? 'wasm');
  const socket: VolunteerSocket = io(url, { transports: ['websocket'], reconnection: true, forceNew: true, ...opts.socketOptions });
  opts.wrapSocket?.(socket);
  let last: AgentStatus | null = null;
  const agent = new VolunteerAgent(socket, {
    capabilities: { backend, adapter: null, throughputGflops: 1, agent: `node/${opts.name ?? 'sim'} tfjs-${tf.version_core}`, ...opts.capabilities },
    onStatus: (s) => (last = s),
    createStage: opts.createStage,
    ...(opts.dutyCycle !== undefined ? { dutyCycle: () => opts.dutyCycle! } : {}),
  });
  return {
    agent,
    socket,
    status: () => last ?? agent.status,
    leave: () => agent.leave(),
    kill: () => {
      socket.io.reconnection(false);
      socket.io.engine?.close();
      agent.dispose();
    },
  };
}
