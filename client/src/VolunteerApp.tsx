import type { RunStatus } from '../../shared/protocol/events';
import { useCallback, useEffect, useRef, useState, type ReactNode } from 'react';
import { duration, fmtLongVacancies, num } from './format';
import { fmtSkip } from './skip-status';
import { ControlsPanel } from './ControlsPanel';
import { GivingPanel } from './GivingPanel';
import { SamplePanel } from './SamplePanel';
import { useContributionTotals } from './useContributionTotals';
import { usePublicSwarm } from './usePublicSwarm';
import { useTabVisibility, useWakeLock } from './useTabVisibility';
import { browserId, savedDutyPercent, savedNickname, saveDutyPercent, saveNickname } from './local-identity';
import { LinkHost } from '../../shared/transport/link-bridge';
import './panels.css';

import {
  initialStatus,
  isBackendName,
  type BackendName,
  type ConnectionState,
  type PageToWorker,
  type StageAssignment,
  type VolunteerStatus,
  type WorkerToPage,
} from './messages';

declare global {
  interface Window {
    /** Latest status snapshot from the worker (for tests and debugging). */
    __volunteerStatus?: VolunteerStatus;
  }
}

/** How long a graceful leave may take before the worker is terminated anyway. */
const LEAVE_TIMEOUT_MS = 10_000;
const MAX_LOG_LINES = 200;

interface PageOptions {
  autojoin: boolean;
  coordinatorUrl: string;
  backends: BackendName[] | undefined;
}

function readPageOptions(): PageOptions {
  const params = new URLSearchParams(window.location.search);
  const backends = params
    .get('backends')
    ?.split(',')
    .map((s) => s.trim())
    .filter(isBackendName);
  return {
    autojoin: params.get('autojoin') === '1',
    coordinatorUrl: params.get('coordinator') ?? window.location.origin,
    backends: backends && backends.length > 0 ? backends : undefined,
  };
}

const CONNECTION_LABEL: Record<ConnectionState, string> = {
  idle: 'Not started',
  initializing: 'Preparing (checking GPU)',
  ready: 'Ready (not connected)',
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  paused: 'Paused (not training)',
  leaving: 'Leaving…',
  left: 'Left the swarm',
  error: 'Error',
};

function fmtStage(stage: StageAssignment, group: { replica: number; of: number } | null, connection: ConnectionState, spareReason: string | null = null): string {
  if (stage === 'spare') return spareReason ? `Spare: ${spareReason}` : 'Spare (standby)';
  if (typeof stage === 'number') return group ? `Stage ${stage} · replica ${group.replica} of ${group.of}` : `Stage ${stage}`;
  return connection === 'connected' ? 'Waiting for assignment' : 'Waiting';
}

function fmtRun(run: RunStatus | null): string {
  if (!run) return '—';
  if (run.state === 'waiting' || run.state === 'recovering') {
    const who = run.needed > 0 ? `; ${run.needed} more volunteer${run.needed === 1 ? '' : 's'} needed` : '';
    const long = fmtLongVacancies(run.needsVolunteer);
    return `${run.state === 'waiting' ? 'waiting to start' : 'rebuilding a lost stage'}${who}${long ? ` (${long})` : ''}`;
  }
  const loss = run.trainLoss !== null ? `, loss ${run.trainLoss.toFixed(3)}` : '';
  const skip = fmtSkip(run.skip);
  return `${run.state}, ${run.stages} stages, iteration ${run.iteration}${loss}${skip ? `; ${skip}` : ''}`;
}

interface RowProps {
  label: string;
  testId: string;
  children: ReactNode;
}

function Row({ label, testId, children }: RowProps) {
  return (
    <div className="row">
      <dt>{label}</dt>
      <dd data-testid={testId}>{children}</dd>
    </div>
  );
}

export function VolunteerApp() {
  const [options] = useState(readPageOptions);
  const [status, setStatus] = useState<VolunteerStatus>(initialStatus);
  const [running, setRunning] = useState(false);
  const [leaving, setLeaving] = useState(false);
  const [logLines, setLogLines] = useState<string[]>([]);
  const [myId] = useState(browserId);
  const [nickname, setNickname] = useState(savedNickname);
  const [dutyPercent, setDutyPercent] = useState(savedDutyPercent);
  // What join() sends, read at the time of joining (join itself must stay the same function: the
  // mount effect below depends on it and its clean-up terminates the worker).
  const joinSettings = useRef({ nickname, dutyPercent });
  joinSettings.current = { nickname, dutyPercent };
  const workerRef = useRef<Worker | null>(null);
  /** The page-side WebRTC links of the worker's agent (`--transport p2p|auto`). */
  const linkHostRef = useRef<LinkHost | null>(null);
  const leaveTimerRef = useRef<ReturnType<typeof setTimeout> | null>(null);

  const appendLog = useCallback((line: string) => {
    setLogLines((prev) => [...prev.slice(-(MAX_LOG_LINES - 1)), line]);
  }, []);

  const teardown = useCallback(() => {
    if (leaveTimerRef.current) clearTimeout(leaveTimerRef.current);
    leaveTimerRef.current = null;
    workerRef.current?.terminate();
    workerRef.current = null;
    linkHostRef.current?.close();
    linkHostRef.current = null;
    setRunning(false);
    setLeaving(false);
  }, []);

  const join = useCallback(() => {
    if (workerRef.current) return;
    const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'volunteer' });
    workerRef.current = worker;
    // The worker's WebRTC links live here: workers have no RTCPeerConnection (docs/p2p.md).
    const webrtc = typeof RTCPeerConnection === 'function';
    const host = webrtc ? new LinkHost((msg, transfer) => worker.postMessage({ type: 'p2p', msg } satisfies PageToWorker, transfer ?? []), (c) => new RTCPeerConnection(c)) : null;
    linkHostRef.current = host;
    worker.onmessage = (ev: MessageEvent<WorkerToPage>) => {
      const msg = ev.data;
      switch (msg.type) {
        case 'status':
          window.__volunteerStatus = msg;
          setStatus(msg);
          break;
        case 'log':
          appendLog(`[${msg.level}] ${msg.message}`);
          break;
        case 'stopped':
          if (workerRef.current === worker) teardown();
          break;
        case 'p2p':
          host?.handle(msg.msg);
          break;
      }
    };
    worker.onerror = (ev: ErrorEvent) => {
      const message = `worker failed: ${ev.message || 'could not load the worker script'}`;
      appendLog(`[error] ${message}`);
      setStatus((prev) => {
        const next: VolunteerStatus = { ...prev, connection: 'error', error: message, updatedAt: Date.now() };
        window.__volunteerStatus = next;
        return next;
      });
      if (workerRef.current === worker) teardown();
    };
    const start: PageToWorker = { type: 'start', url: options.coordinatorUrl, backends: options.backends, browserId: myId, nickname: joinSettings.current.nickname ?? undefined, dutyPercent: joinSettings.current.dutyPercent, webrtc };
    worker.postMessage(start);
    setRunning(true);
  }, [appendLog, options, teardown, myId]);

  const stop = useCallback(() => {
    const worker = workerRef.current;
    if (!worker || leaving) return;
    setLeaving(true);
    const msg: PageToWorker = { type: 'stop' };
    worker.postMessage(msg);
    leaveTimerRef.current = setTimeout(() => {
      appendLog('[warn] graceful leave timed out; terminating the worker');
      if (workerRef.current === worker) teardown();
    }, LEAVE_TIMEOUT_MS);
  }, [appendLog, leaving, teardown]);

  useEffect(() => {
    // Runs once per mount (twice in StrictMode dev, where the first worker is torn down again).
    if (options.autojoin) join();
    // Best effort: tell the worker to leave when the tab goes away.
    const onPageHide = () => workerRef.current?.postMessage({ type: 'stop' } satisfies PageToWorker);
    window.addEventListener('pagehide', onPageHide);
    return () => {
      window.removeEventListener('pagehide', onPageHide);
      teardown();
    };
  }, [join, options.autojoin, teardown]);

  const post = useCallback((msg: PageToWorker) => workerRef.current?.postMessage(msg), []);
  const onDuty = useCallback(
    (percent: number) => {
      setDutyPercent(percent);
      saveDutyPercent(percent);
      post({ type: 'duty', percent });
    },
    [post],
  );
  const onNickname = useCallback((n: string | null) => {
    setNickname(n);
    saveNickname(n);
  }, []);

  const s = status;
  const paused = s.connection === 'paused';
  const totals = useContributionTotals(s);
  const visibility = useTabVisibility(s.iteration, s.stepMs);
  const wakeLock = useWakeLock(running && !paused && s.connection !== 'leaving');
  const pub = usePublicSwarm(options.coordinatorUrl, myId);
  // Announced to screen readers when it changes (not every iteration).
  const live = `${CONNECTION_LABEL[s.connection]}. ${fmtStage(s.stage, s.group, s.connection, s.spareReason)}.${s.run ? ` Swarm ${s.run.state}${s.run.needed > 0 ? `, ${s.run.needed} more volunteers needed` : ''}${fmtLongVacancies(s.run.needsVolunteer) ? `; ${fmtLongVacancies(s.run.needsVolunteer)}` : ''}.` : ''}`;
  return (
    <main className="volunteer" data-connection={s.connection}>
      <header>
        <h1>Volunteer training swarm</h1>
        <p className="lede">
          Lend this tab's GPU to train a small language model together with other volunteers. Your browser trains one
          slice (pipeline stage) of the model; you can stop at any time.
        </p>
      </header>

      <div className="actions">
        {running ? (
          <button type="button" className="stop" data-testid="join-button" onClick={stop} disabled={leaving}>
            {leaving ? 'Leaving…' : 'Stop'}
          </button>
        ) : (
          <button type="button" className="join" data-testid="join-button" onClick={join}>
            Join
          </button>
        )}
        <span className={`pill pill-${s.connection}`} data-testid="status-connection" data-value={s.connection}>
          {CONNECTION_LABEL[s.connection]}
        </span>
      </div>

      <p className="sr-only" role="status" aria-live="polite" data-testid="live-status">
        {live}
      </p>

      {s.error && (
        <p className="error" role="alert" data-testid="status-error">
          {s.error}
        </p>
      )}

      <section className="panel" aria-label="Status">
        <dl>
          <Row label="Backend" testId="status-backend">
            <span data-value={s.backend ?? ''}>{s.backend ?? (s.connection === 'initializing' ? 'selecting…' : '—')}</span>
            {s.skipped.length > 0 && (
              <ul className="skipped" data-testid="status-skipped">
                {s.skipped.map((k) => (
                  <li key={k.backend}>
                    <strong>{k.backend}</strong> not used: {k.reason}
                  </li>
                ))}
              </ul>
            )}
          </Row>
          <Row label="GPU adapter" testId="status-adapter">
            {s.adapter ? s.adapter.label : s.backend && s.backend !== 'webgpu' ? 'n/a (not using WebGPU)' : '—'}
          </Row>
          <Row label="Throughput" testId="status-throughput">
            {num(s.throughputGflops, 2, ' GFLOP/s')}
          </Row>
          <Row label="Stage" testId="status-stage">
            {fmtStage(s.stage, s.group, s.connection, s.spareReason)}
          </Row>
          <Row label="Swarm" testId="status-run">
            {fmtRun(s.run)}
          </Row>
          <Row label="Iteration" testId="status-iteration">
            {s.iteration ?? '—'}
          </Row>
          <Row label="Step time" testId="status-step-ms">
            {num(s.stepMs, 1, ' ms')}
          </Row>
          <Row label="Tokens / s" testId="status-tokens-per-sec">
            {num(s.tokensPerSec, 1)}
          </Row>
          <Row label="GPU time donated" testId="status-gpu-seconds">
            {duration(s.gpuSecondsDonated, true)}
          </Row>
          <Row label="Last loss" testId="status-last-loss">
            {num(s.lastLoss, 4)}
          </Row>
        </dl>
      </section>

      <ControlsPanel
        running={running}
        paused={paused}
        dutyPercent={dutyPercent}
        onDuty={onDuty}
        onPause={() => post({ type: 'pause' })}
        onResume={() => post({ type: 'resume' })}
        visibility={visibility}
        wakeLock={wakeLock}
      />

      <GivingPanel tab={totals.tab} browser={totals.browser} swarm={pub.swarm} contributors={pub.contributors} nickname={nickname} onNickname={onNickname} running={running} />

      <SamplePanel sample={pub.sample?.sample ?? null} everySeconds={pub.sample?.everySeconds ?? null} />

      {logLines.length > 0 && (
        <details className="log">
          <summary>Details</summary>
          <ComputeTable status={s} />
          <pre data-testid="worker-log">{logLines.join('\n')}</pre>
        </details>
      )}
    </main>
  );
}

/**
 * What each backend gives the swarm on this tab: the one in use, with its matmul rate (measured
 * at start) and the matmul rate its stage achieves while training (and the ratio of the two);
 * the faster ones that were not usable, with why.
 */
function ComputeTable({ status: s }: { status: VolunteerStatus }) {
  if (!s.backend && s.skipped.length === 0) return null;
  const ratio = s.stageGflops !== null && s.throughputGflops ? s.stageGflops / s.throughputGflops : null;
  return (
    <table className="compute" data-testid="compute-table">
      <thead>
        <tr>
          <th>backend</th>
          <th>matmul GFLOP/s</th>
          <th>stage GFLOP/s</th>
          <th>stage / matmul</th>
          <th>backward</th>
        </tr>
      </thead>
      <tbody>
        {s.backend && (
          <tr data-testid={`compute-${s.backend}`}>
            <td>{s.backend} (in use)</td>
            <td>{num(s.throughputGflops, 2)}</td>
            <td>{s.stageGflops === null ? 'after the first step' : num(s.stageGflops, 2)}</td>
            <td>{num(ratio, 2)}</td>
            <td>{s.backwardMode ?? '—'}</td>
          </tr>
        )}
        {s.skipped.map((k) => (
          <tr key={k.backend} data-testid={`compute-${k.backend}`}>
            <td>{k.backend}</td>
            <td colSpan={4}>not used: {k.reason}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
