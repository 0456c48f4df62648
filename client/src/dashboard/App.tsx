/** The operator dashboard: live swarm, charts, event log, controls, sampling, past runs. */
import { useCallback, useEffect, useState, type FormEvent } from 'react';

import type { RunDetail } from '../../../shared/protocol/operator';
import { LossVsIteration, LossVsTime, StageTimes, ThroughputChart } from './Charts';
import { Controls } from './Controls';
import { CpsrPanel } from './CpsrPanel';
import { EventLog } from './EventLog';
import { compact, dateTime, num } from '../format';
import { Runs } from './Runs';
import { Sampler } from './Sampler';
import { PartialModel } from './PartialModel';
import { servedSubset } from '../skip-status';
import { SwarmMap } from './SwarmMap';
import { P2pPanel } from './P2pPanel';
import { readToken, useOperator } from './useOperator';

function TokenScreen({ refused, error, onToken }: { refused: boolean; error: string | null; onToken: (t: string) => void }) {
  const [value, setValue] = useState('');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (value.trim()) onToken(value.trim());
  };
  return (
    <main className="gate" data-testid="token-required">
      <h1>Swarm dashboard</h1>
      <div className="panel">
        <h2>{refused ? 'Operator token refused' : 'Operator token required'}</h2>
        <p>
          This page controls the training run, so only the operator may use it. Open the dashboard link the coordinator printed when it started (it
          ends in <code>#token=…</code>), or paste the token below. Start the coordinator with <code>--operator-token</code> or{' '}
          <code>OPERATOR_TOKEN</code> to choose it yourself.
        </p>
        {refused && error && <p className="error">The coordinator said: {error}</p>}
        <form onSubmit={submit} className="control-row">
          <input type="password" placeholder="operator token" value={value} onChange={(e) => setValue(e.target.value)} aria-label="operator token" autoComplete="off" />
          <button type="submit" className="primary">
            Open
          </button>
        </form>
      </div>
    </main>
  );
}

export function App() {
  const [token, setToken] = useState<string | null>(() => readToken());
  useEffect(() => {
    const onHash = () => setToken(readToken());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  const { state, call, refreshRuns } = useOperator(token);
  const [review, setReview] = useState<RunDetail | null>(null);
  const [reviewError, setReviewError] = useState<string | null>(null);

  const openRun = useCallback(
    async (id: string | null) => {
      setReviewError(null);
      if (id === null) return setReview(null);
      const r = await call<{ detail: RunDetail }>('run', { runId: id });
      if (r.ok) setReview(r.detail);
      else setReviewError(r.error);
    },
    [call],
  );

  if (state.connection === 'no-token' || state.connection === 'refused' || !token) {
    return (
      <TokenScreen
        refused={state.connection === 'refused'}
        error={state.error}
        onToken={(t) => {
          window.location.hash = `token=${encodeURIComponent(t)}`;
          setToken(t);
        }}
      />
    );
  }

  const { swarm, init } = state;
  if (!swarm || !init) {
    return (
      <main className="gate">
        <h1>Swarm dashboard</h1>
        <p className="muted" data-testid="connecting">
          {state.error ?? 'Connecting to the coordinator…'}
        </p>
      </main>
    );
  }

  const last = state.iterations[state.iterations.length - 1];
  const lastVal = [...state.iterations].reverse().find((r) => r.valLoss != null)?.valLoss ?? swarm.status.valLoss;
  const recent = state.iterations.slice(-10);
  const tps = recent.length ? recent.reduce((a, r) => a + r.tokens, 0) / Math.max(1e-9, recent.reduce((a, r) => a + r.seconds, 0)) : null;
  // The live run's row follows the pushed iterations (the list itself is fetched on demand).
  const runs = state.runs.map((r) =>
    r.live ? { ...r, iterations: state.iterations.length, lastTrainLoss: last?.trainLoss ?? r.lastTrainLoss, lastValLoss: lastVal ?? r.lastValLoss } : r,
  );
  const iterations = review ? review.iterations : state.iterations;
  const events = review ? review.events : state.events;
  const stages = Number(((review?.run.settings.settings ?? init.settings.settings) as { stages?: number } | undefined)?.stages ?? swarm.stages.length);
  // --dp: the mode and H of the run, and the last diloco sync's bytes and the replicas' drift.
  const dp = ((review?.run.settings.settings ?? init.settings.settings) as { dp?: { mode: string; every: number } } | undefined)?.dp;
  const lastSync = [...iterations].reverse().find((r) => r.dpSync)?.dpSync;

  return (
    <div className="dash">
      <header className="topbar">
        <div className="title">
          <h1>Swarm dashboard</h1>
          <span className="mono muted small">run {swarm.runId}</span>
        </div>
        <dl className="kpis">
          <div>
            <dt>state</dt>
            <dd>
              <span className={`badge state-${swarm.status.state}`} data-testid="run-state">
                {swarm.status.state}
              </span>
            </dd>
          </div>
          <div>
            <dt>iteration</dt>
            <dd data-testid="iteration">{swarm.status.iteration}</dd>
          </div>
          <div>
            <dt>train loss</dt>
            <dd>{num(last?.trainLoss ?? swarm.status.trainLoss, 4)}</dd>
          </div>
          <div>
            <dt>val loss</dt>
            <dd>{num(lastVal, 4)}</dd>
          </div>
          <div>
            <dt>tokens/s</dt>
            <dd>{compact(tps)}</dd>
          </div>
          <div>
            <dt>data parallel</dt>
            <dd data-testid="dp-mode" title={lastSync ? `last sync: ${lastSync.seconds.toFixed(2)} s; drift per stage ${lastSync.drift.map((d) => d.toFixed(3)).join(' / ')}` : undefined}>
              {dp?.mode === 'diloco' ? `diloco H=${dp.every}` : 'exact'}
              {lastSync ? ` · sync ${compact(lastSync.bytes / 1e6)} MB · drift ${num(Math.max(...lastSync.drift), 3)}` : ''}
            </dd>
          </div>
          <div>
            <dt>link</dt>
            <dd>
              <span className={`badge conn-${state.connection}`} data-testid="connection">
                {state.connection === 'connected' ? 'live' : state.connection}
              </span>
            </dd>
          </div>
        </dl>
      </header>
      {state.error && state.connection !== 'connected' && <p className="error banner">{state.error}</p>}
      {review && (
        <p className="banner review" data-testid="review-banner">
          Reviewing past run <span className="mono">{review.run.id}</span> from {dateTime(review.run.created)} (read-only).{' '}
          <button type="button" className="link" onClick={() => setReview(null)}>
            Back to the live run
          </button>
        </p>
      )}
      {reviewError && <p className="error banner">{reviewError}</p>}
      <main className="grid">
        {!review && <SwarmMap swarm={swarm} swarmAt={state.swarmAt} />}
        {!review && <Controls swarm={swarm} call={call as never} token={token} />}
        {!review && swarm.cpsr && <CpsrPanel cpsr={swarm.cpsr} />}
        {!review && swarm.p2p && swarm.p2p.transport !== 'relay' && <P2pPanel p2p={swarm.p2p} />}
        <LossVsIteration iterations={iterations} events={events} wide={!!review} />
        <LossVsTime iterations={iterations} events={events} />
        <ThroughputChart iterations={iterations} />
        <StageTimes iterations={iterations} stages={stages} />
        {!review && <Sampler call={call as never} disabled={servedSubset(swarm.stages) === null || swarm.sampling} present={swarm.stages.some((s) => s.state !== 'training') ? servedSubset(swarm.stages) : null} />}
        {!review && <PartialModel call={call as never} nStages={swarm.stages.length} disabled={swarm.sampling} />}
        <EventLog events={events} title={review ? `Event log of ${review.run.id}` : 'Event log'} />
        <Runs runs={runs} viewing={review?.run.id ?? null} onOpen={(id) => void openRun(id)} onRefresh={() => void refreshRuns()} />
      </main>
    </div>
  );
}
