/**
 * Web Worker entry: owns the status snapshot, turns page messages into
 * runVolunteer() calls, and posts status snapshots back.
 */
import {
  clampDutyPercent,
  DEFAULT_BACKEND_ORDER,
  initialStatus,
  type PageToWorker,
  type StatusFields,
  type VolunteerStatus,
  type WorkerToPage,
} from './messages';
import { runVolunteer, type VolunteerControls } from './volunteer';
import { deliverLinkEvent } from './worker-links';

const scope = self as unknown as {
  postMessage(message: WorkerToPage): void;
  onmessage: ((ev: MessageEvent<PageToWorker>) => void) | null;
  addEventListener(type: 'unhandledrejection', listener: (ev: PromiseRejectionEvent) => void): void;
};

let status: VolunteerStatus = initialStatus();
let session: { controller: AbortController; done: Promise<void> } | null = null;

/** Pause and duty cycle, changed by page messages while a session runs. */
const controls = (() => {
  let wake: (() => void) | null = null;
  let next = new Promise<void>((r) => (wake = r));
  const c: VolunteerControls & { set(patch: Partial<Pick<VolunteerControls, 'paused' | 'dutyPercent'>>): void } = {
    paused: false,
    dutyPercent: 100,
    changed: () => next,
    set(patch) {
      Object.assign(c, patch);
      const w = wake;
      next = new Promise<void>((r) => (wake = r));
      w?.();
    },
  };
  return c;
})();

function post(message: WorkerToPage): void {
  scope.postMessage(message);
}

function update(patch: Partial<StatusFields>): void {
  status = { ...status, ...patch, type: 'status', updatedAt: Date.now() };
  post(status);
}

function log(level: 'debug' | 'info' | 'warn' | 'error', message: string): void {
  post({ type: 'log', level, message });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function start(msg: Extract<PageToWorker, { type: 'start' }>): void {
  if (session) {
    log('warn', 'start ignored: already running');
    return;
  }
  const controller = new AbortController();
  controls.set({ paused: false, dutyPercent: clampDutyPercent(msg.dutyPercent) });
  update({ dutyPercent: controls.dutyPercent });
  const done = runVolunteer({
    url: msg.url,
    controls,
    browserId: msg.browserId,
    nickname: msg.nickname,
    webrtc: msg.webrtc === true,
    backends: msg.backends && msg.backends.length > 0 ? msg.backends : DEFAULT_BACKEND_ORDER,
    signal: controller.signal,
    status: () => status,
    update,
    log,
  }).then(
    () => {
      update({ connection: 'left' });
    },
    (err: unknown) => {
      update({ connection: 'error', error: errorText(err) });
      log('error', errorText(err));
    },
  );
  session = { controller, done };
  void done.then(() => {
    session = null;
    post({ type: 'stopped' });
  });
}

function stop(): void {
  if (!session) {
    post({ type: 'stopped' });
    return;
  }
  if (!session.controller.signal.aborted) {
    update({ connection: 'leaving' });
    session.controller.abort();
  }
}

scope.onmessage = (ev) => {
  const msg = ev.data;
  switch (msg.type) {
    case 'start':
      start(msg);
      break;
    case 'stop':
      stop();
      break;
    case 'duty':
      controls.set({ dutyPercent: clampDutyPercent(msg.percent) });
      update({ dutyPercent: controls.dutyPercent });
      break;
    case 'pause':
    case 'resume':
      if (session) controls.set({ paused: msg.type === 'pause' });
      break;
    case 'p2p':
      deliverLinkEvent(msg.msg);
      break;
  }
};

scope.addEventListener('unhandledrejection', (ev) => {
  log('error', `unhandled rejection in worker: ${errorText(ev.reason)}`);
});

post(status);
