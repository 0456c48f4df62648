import { BACKENDS, type BackendName, type RunStatus } from '../../shared/protocol/events';
import type { BackwardMode } from '../../shared/model/stage';
import type { LinkEvent, LinkRequest } from '../../shared/transport/link-bridge';
/**
 * Messages exchanged between the volunteer page (main thread) and the
 * training Web Worker. Both directions are discriminated unions on `type`.
 *
 * Status messages are full snapshots (not patches): the page can simply
 * replace its copy with the latest one.
 */

export type { BackendName };

/**
 * tfjs backends we know how to select, fastest first: webgpu, webgl, wasm, cpu. Measured with
 * `npm run bench:compute-browser` (docs/benchmarks.md): on a software WebGPU adapter (SwiftShader)
 * wasm runs a stage 10-30x faster than webgpu, but a real GPU is what WebGPU is for and no GPU was
 * at hand to measure, so webgpu stays first; the page shows what the chosen backend achieves.
 */
export const DEFAULT_BACKEND_ORDER: readonly BackendName[] = BACKENDS;

export function isBackendName(value: string): value is BackendName {
  return (DEFAULT_BACKEND_ORDER as readonly string[]).includes(value);
}

/** A backend that was tried (or not even tried) and why it was not used. */
export interface SkippedBackend {
  backend: BackendName;
  /** Human-readable explanation, suitable for showing to the volunteer. */
  reason: string;
}

/** What we know about the GPU behind the chosen backend. */
export interface AdapterSummary {
  vendor: string;
  architecture: string;
  description: string;
  device: string;
  /** True for software / fallback adapters such as SwiftShader. */
  isFallbackAdapter: boolean | null;
  /** One-line label for display, e.g. "google swiftshader (software)". */
  label: string;
}

/**
 * Coordinator connection lifecycle as seen by the worker.
 * - idle: nothing started yet
 * - initializing: selecting a tfjs backend / measuring throughput
 * - ready: backend is up, not (yet) connected to a coordinator
 * - connecting / connected / reconnecting: socket.io states
 * - paused: left the swarm on the volunteer's request, backend kept warm; `resume` rejoins
 * - leaving: graceful leave in progress (after a `stop` request)
 * - left: left gracefully; the worker may now be terminated
 * - error: fatal error, see `error`
 */
export type ConnectionState =
  | 'idle'
  | 'initializing'
  | 'ready'
  | 'connecting'
  | 'connected'
  | 'reconnecting'
  | 'paused'
  | 'leaving'
  | 'left'
  | 'error';

/** Pipeline stage index, 'spare' (hot standby), or null (waiting for an assignment). */
export type StageAssignment = number | 'spare' | null;

export interface VolunteerStatus {
  type: 'status';
  /** tfjs backend in use, null until selected. */
  backend: BackendName | null;
  adapter: AdapterSummary | null;
  /** Faster backends that were not usable, with reasons. */
  skipped: SkippedBackend[];
  /** Local matmul benchmark result. */
  throughputGflops: number | null;
  /** Matmul GFLOP/s the stage achieves while training: its FLOPs per token (from the config) x tokens/s. */
  stageGflops: number | null;
  /** How the stage's backward gets its activations (shared/model/stage.ts). */
  backwardMode: BackwardMode | null;
  connection: ConnectionState;
  stage: StageAssignment;
  /** Why this tab waits as a spare, when the coordinator said (its device cannot hold any stage). */
  spareReason: string | null;
  /** Place in the stage's group of replicas (e.g. replica 2 of 3), once assigned. */
  group: { replica: number; of: number } | null;
  /** Global training iteration this volunteer last worked on. */
  iteration: number | null;
  /** Wall time of the last local step (forward or backward), ms. */
  stepMs: number | null;
  tokensPerSec: number | null;
  /** Accumulated seconds of accelerator work done for the swarm (this tab, all sessions). */
  gpuSecondsDonated: number;
  /** Tokens this tab ran through its stage (all sessions). */
  tokens: number;
  /** Forward microbatches this tab ran through its stage (all sessions). */
  microbatches: number;
  /** The duty cycle in force: the largest share of time spent computing, in percent. */
  dutyPercent: number;
  lastLoss: number | null;
  /** The run as the coordinator last described it (state, iteration, volunteers still needed). */
  run: RunStatus | null;
  /** Last fatal or user-visible error, null when fine. */
  error: string | null;
  /** Date.now() in the worker when this snapshot was produced. */
  updatedAt: number;
}

export type StatusFields = Omit<VolunteerStatus, 'type' | 'updatedAt'>;

export function initialStatus(): VolunteerStatus {
  return {
    type: 'status',
    backend: null,
    adapter: null,
    skipped: [],
    throughputGflops: null,
    stageGflops: null,
    backwardMode: null,
    connection: 'idle',
    stage: null,
    group: null,
    spareReason: null,
    iteration: null,
    stepMs: null,
    tokensPerSec: null,
    gpuSecondsDonated: 0,
    tokens: 0,
    microbatches: 0,
    dutyPercent: 100,
    lastLoss: null,
    run: null,
    error: null,
    updatedAt: Date.now(),
  };
}

/** Worker -> page. */
export type WorkerToPage =
  | VolunteerStatus
  | { type: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; message: string }
  /** The worker has finished leaving (or failed to start); it is safe to terminate it. */
  | { type: 'stopped' }
  /** For the page's WebRTC links (client/src/worker-links.ts). */
  | { type: 'p2p'; msg: LinkRequest };

/** Page -> worker. */
export type PageToWorker =
  | {
      type: 'start';
      /** Coordinator base URL (socket.io endpoint origin). */
      url: string;
      /** Optional override of the backend preference order (testing / debugging). */
      backends?: BackendName[];
      /** This browser's random local id (contributions across visits). */
      browserId?: string;
      /** Opt-in nickname for the public top-contributors table. */
      nickname?: string;
      /** Use at most this percent of the GPU's time (10..100). */
      dutyPercent: number;
      /** The page can open WebRTC links for the worker (`--transport p2p|auto`). */
      webrtc?: boolean;
    }
  /** Change the duty cycle while running. */
  | { type: 'duty'; percent: number }
  /** Leave the swarm but keep the backend ready; `resume` rejoins. */
  | { type: 'pause' }
  | { type: 'resume' }
  /** Leave the swarm gracefully, then reply with `{type:'stopped'}`. */
  | { type: 'stop' }
  /** From the page's WebRTC links to the worker's agent. */
  | { type: 'p2p'; msg: LinkEvent };

/** The GPU-share control's range: at least 10% (a tab below that holds the swarm back for little). */
export const DUTY_PERCENT_MIN = 10;
export const DUTY_PERCENT_MAX = 100;

/** A duty-cycle percentage within the control's range (non-numbers become 100). */
export function clampDutyPercent(p: number): number {
  if (!Number.isFinite(p)) return DUTY_PERCENT_MAX;
  return Math.min(DUTY_PERCENT_MAX, Math.max(DUTY_PERCENT_MIN, Math.round(p)));
}
