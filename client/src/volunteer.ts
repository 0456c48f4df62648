/**
 * The volunteer's life cycle inside the Web Worker.
 *
 * `runVolunteer(ctx)`:
 *   1. picks the fastest working tfjs backend (and says why faster ones were skipped),
 *   2. measures local matmul throughput,
 *   3. joins the coordinator over socket.io and trains its assigned stage (VolunteerAgent),
 *      computing at most `dutyPercent` of the time,
 *   4. on Pause leaves gracefully but keeps the backend, and rejoins on Resume,
 *   5. leaves gracefully when the page says Stop.
 */
import { io } from 'socket.io-client';
import { deviceLimits, measureThroughput, selectBackend } from './backend';
import { VolunteerAgent, type VolunteerSocket } from '../../shared/volunteer/agent';
import { pageOwnedLinks } from './worker-links';
import { stageFlops } from '../../shared/model/roofline';
import type { Stage } from '../../shared/model/stage';
import type { BackendName, StatusFields, VolunteerStatus } from './messages';

/** What the page can change while the volunteer runs. */
export interface VolunteerControls {
  paused: boolean;
  /** Largest share of time spent computing, percent. */
  dutyPercent: number;
  /** Resolves at the next change of `paused` or `dutyPercent`. */
  changed(): Promise<void>;
}

export interface VolunteerContext {
  /** Coordinator base URL (from the page's `start` message). */
  url: string;
  /** Backend preference order, fastest first. */
  backends: readonly BackendName[];
  /** Aborted when the page asks the volunteer to leave (`stop`). Leave gracefully, then return. */
  signal: AbortSignal;
  controls: VolunteerControls;
  /** This browser's random local id and opt-in nickname (sent in hello). */
  browserId?: string;
  nickname?: string;
  /** The page owns WebRTC links for this worker (`--transport p2p|auto`; worker-links.ts). */
  webrtc?: boolean;
  /** Latest status snapshot. */
  status(): Readonly<VolunteerStatus>;
  /** Merge fields into the status and post the snapshot to the page. */
  update(patch: Partial<StatusFields>): void;
  log(level: 'debug' | 'info' | 'warn' | 'error', message: string): void;
}

/** Resolves when `signal` aborts. */
export function whenAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

export async function runVolunteer(ctx: VolunteerContext): Promise<void> {
  ctx.update({ connection: 'initializing', error: null });

  const selection = await selectBackend(ctx.backends, { log: (m) => ctx.log('info', m) });
  ctx.update({ backend: selection.backend, adapter: selection.adapterInfo, skipped: selection.skipped });
  if (ctx.signal.aborted) return;

  const throughputGflops = await measureThroughput();
  ctx.update({ throughputGflops });
  ctx.log('info', `matmul throughput on ${selection.backend}: ${throughputGflops.toFixed(2)} GFLOP/s`);
  if (ctx.signal.aborted) return;

  // Totals of earlier sessions (before a pause) are added to the current session's.
  const done = { computeSeconds: 0, tokens: 0, microbatches: 0 };
  for (;;) {
    if (ctx.controls.paused) {
      ctx.update({ connection: 'paused', stage: null, run: null, error: null });
      while (ctx.controls.paused && !ctx.signal.aborted) await Promise.race([ctx.controls.changed(), whenAborted(ctx.signal)]);
      if (ctx.signal.aborted) return;
    }
    const session = joinSwarm(ctx, selection, throughputGflops, done);
    while (!ctx.controls.paused && !ctx.signal.aborted) await Promise.race([ctx.controls.changed(), whenAborted(ctx.signal)]);
    // Leave gracefully: the coordinator is told (and takes the stage's state if this tab is its
    // last replica), not left to time out.
    const s = session.agent.status;
    done.computeSeconds += s.computeSeconds;
    done.tokens += s.tokens;
    done.microbatches += s.microbatches;
    await session.agent.leave();
    if (ctx.signal.aborted) return;
  }
}

/** One membership of the swarm: a socket and the same VolunteerAgent the Node volunteers run. */
function joinSwarm(
  ctx: VolunteerContext,
  selection: Awaited<ReturnType<typeof selectBackend>>,
  throughputGflops: number,
  done: { computeSeconds: number; tokens: number; microbatches: number },
): { agent: VolunteerAgent } {
  const socket: VolunteerSocket = io(ctx.url, { transports: ['websocket'], reconnection: true, forceNew: true });
  ctx.update({ connection: 'connecting' });
  socket.on('connect', () => ctx.update({ connection: 'connected', error: null }));
  socket.on('disconnect', (reason) => {
    if (!ctx.signal.aborted && !ctx.controls.paused) ctx.update({ connection: 'reconnecting', error: `disconnected: ${reason}` });
  });
  socket.on('connect_error', (e) => ctx.update({ connection: 'reconnecting', error: `cannot reach coordinator: ${e.message}` }));
  const adapter = selection.adapterInfo;
  // The agent, once built: its status callback reads the stage it trains.
  let agentRef: VolunteerAgent | null = null;
  const agent = new VolunteerAgent(socket, {
    capabilities: {
      backend: selection.backend,
      adapter: adapter
        ? { vendor: adapter.vendor.slice(0, 200), architecture: adapter.architecture.slice(0, 200), description: adapter.description.slice(0, 400), isFallbackAdapter: adapter.isFallbackAdapter ?? undefined }
        : null,
      throughputGflops: Number.isFinite(throughputGflops) ? throughputGflops : 0,
      agent: (typeof navigator !== 'undefined' ? navigator.userAgent : 'worker').slice(0, 200),
      limits: deviceLimits(selection.backend),
      ...(ctx.browserId ? { browserId: ctx.browserId } : {}),
      ...(ctx.browserId && ctx.nickname ? { nickname: ctx.nickname } : {}),
    },
    dutyCycle: () => ctx.controls.dutyPercent / 100,
    // --transport p2p|auto: the same shared PeerLinks as the Node volunteers, on this context's
    // RTCPeerConnection where it has one, else on the page's (Chromium has none in a dedicated
    // worker: worker-links.ts); without either the tab says so in hello and stays on the relay.
    ...(typeof RTCPeerConnection === 'function'
      ? { createPeerConnection: (c: RTCConfiguration) => new RTCPeerConnection(c) }
      : ctx.webrtc
        ? { createLinks: pageOwnedLinks }
        : {}),
    onStatus: (s) => {
      const trained = agentRef?.currentStage ?? null;
      ctx.update({
        stageGflops: trained && s.tokensPerSec ? (s.tokensPerSec * flopsPerToken(trained)) / 1e9 : null,
        backwardMode: trained?.backwardMode ?? null,
        stage: s.stage,
        spareReason: s.spareReason,
        group: s.group,
        iteration: s.iteration,
        stepMs: s.stepMs,
        tokensPerSec: s.tokensPerSec,
        gpuSecondsDonated: done.computeSeconds + s.computeSeconds,
        tokens: done.tokens + s.tokens,
        microbatches: done.microbatches + s.microbatches,
        lastLoss: s.lastLoss,
        run: s.run,
      });
    },
    onLog: (level, message) => ctx.log(level, message),
  });
  agentRef = agent;
  return { agent };
}

/** Matmul FLOPs of one token's forward and backward through `stage` (see shared/model/roofline.ts). */
export function flopsPerToken(stage: Stage): number {
  const f = stageFlops(stage.config, stage.index, 1);
  return (f.forward + f.backward) / stage.config.seqLen;
}
