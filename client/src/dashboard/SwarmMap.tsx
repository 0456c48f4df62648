/** The pipeline: one card per stage in order, the tab serving it, and the spares. */
import { useEffect, useState } from 'react';

import type { SwarmSnapshot, TabInfo } from '../../../shared/protocol/operator';
import { compact, duration, num, stageRole } from '../format';

function useNow(ms = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

function TabFacts({ tab, since }: { tab: TabInfo; since: number }) {
  return (
    <dl className="facts">
      <div>
        <dt>tab</dt>
        <dd className="mono" data-testid="tab-id">
          {tab.id}
        </dd>
      </div>
      <div>
        <dt>backend</dt>
        <dd>
          <span className={`backend backend-${tab.backend}`}>{tab.backend}</span>
        </dd>
      </div>
      <div className="wide">
        <dt>adapter</dt>
        <dd title={tab.adapter ?? undefined}>{tab.adapter ?? '—'}</dd>
      </div>
      <div>
        <dt>step</dt>
        <dd>{tab.stepMs == null ? '—' : `${compact(tab.stepMs)} ms`}</dd>
      </div>
      <div>
        <dt>tokens/s</dt>
        <dd>{compact(tab.tokensPerSec)}</dd>
      </div>
      <div>
        <dt>connected</dt>
        <dd>{duration(tab.connectedSeconds + since)}</dd>
      </div>
    </dl>
  );
}

export function SwarmMap({ swarm, swarmAt }: { swarm: SwarmSnapshot; swarmAt: number }) {
  const now = useNow();
  const since = Math.max(0, (now - swarmAt) / 1000);
  const n = swarm.stages.length;
  return (
    <section className="panel span-12" aria-labelledby="map-title">
      <header className="panel-head">
        <h2 id="map-title">Swarm</h2>
        <span className="muted">
          {n} stages · {swarm.stages.filter((s) => s.state === 'training').length} served · {swarm.spares.length} spare
          {swarm.spares.length === 1 ? '' : 's'}
          {swarm.status.needed > 0 && <strong className="warn"> · needs {swarm.status.needed} more volunteer{swarm.status.needed === 1 ? '' : 's'}</strong>}
        </span>
      </header>
      <ol className="pipeline" data-testid="swarm-map">
        {swarm.stages.map((slot) => (
          <li key={slot.stage} className={`stage stage-${slot.state}`} data-testid={`stage-${slot.stage}`} data-state={slot.state}>
            <div className="stage-head">
              <strong>Stage {slot.stage}</strong>
              <span className={`badge badge-${slot.state}`}>
                {slot.state === 'training' ? 'training' : slot.state === 'rebuilding' ? 'rebuilding…' : 'waiting for a volunteer'}
              </span>
            </div>
            <div className="muted small">{stageRole(slot.stage, n)}</div>
            {slot.tab ? (
              <TabFacts tab={slot.tab} since={since} />
            ) : (
              <p className="stage-empty">
                {slot.state === 'rebuilding'
                  ? 'Recovery is fetching neighbour weights and rebuilding this stage.'
                  : `Weights ready (${slot.reason ?? 'start'}); the next volunteer to join takes it.`}
              </p>
            )}
          </li>
        ))}
      </ol>
      <div className="spares">
        <span className="muted small">Spares:</span>{' '}
        {swarm.spares.length === 0 ? (
          <span className="muted small">none (a lost stage waits for a new volunteer)</span>
        ) : (
          swarm.spares.map((t) => (
            <span key={t.id} className="chip" title={`${t.backend}${t.adapter ? ` · ${t.adapter}` : ''} · ${num(t.throughputGflops, 2)} GFLOP/s`}>
              <span className="mono">{t.id}</span> · {t.backend} · {duration(t.connectedSeconds + since)}
            </span>
          ))
        )}
      </div>
    </section>
  );
}
