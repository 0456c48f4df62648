/** The pipeline: one card per stage in order, the group of tabs serving it, and the spares. */
import { useEffect, useState } from 'react';

import type { SwarmSnapshot, TabInfo } from '../../../shared/protocol/operator';
import { compact, duration, fmtLongVacancies, num, stageRole } from '../format';
import { SkipPaths } from './SkipPaths';

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

/** Every replica of a stage: backend, measured task time, share of the stage's tasks. */
function GroupTable({ tabs }: { tabs: TabInfo[] }) {
  return (
    <table className="group" data-testid="group-table">
      <caption className="muted small">{tabs.length} replicas (exact copies, sharing the stage's microbatches)</caption>
      <thead>
        <tr>
          <th scope="col">tab</th>
          <th scope="col">backend</th>
          <th scope="col">task</th>
          <th scope="col">share</th>
        </tr>
      </thead>
      <tbody>
        {tabs.map((t) => (
          <tr key={t.id}>
            <td className="mono">{t.id}</td>
            <td>{t.backend}</td>
            <td>{t.taskMs == null ? '—' : `${compact(t.taskMs)} ms`}</td>
            <td>{t.share == null ? '—' : `${Math.round(t.share * 100)}%`}</td>
          </tr>
        ))}
      </tbody>
    </table>
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
          {n} stages · {swarm.stages.filter((s) => s.state === 'training').length} served · {swarm.stages.reduce((k, s) => k + s.tabs.length, 0)} tabs training · {swarm.spares.length} spare
          {swarm.spares.length === 1 ? '' : 's'}
          {swarm.status.needed > 0 && <strong className="warn"> · needs {swarm.status.needed} more volunteer{swarm.status.needed === 1 ? '' : 's'}</strong>}
          {(swarm.status.needsVolunteer ?? []).length > 0 && (
            <strong className="warn" role="alert" data-testid="vacancy-alert">
              {' '}
              · waiting too long: {fmtLongVacancies(swarm.status.needsVolunteer)}
            </strong>
          )}
        </span>
      </header>
      <SkipPaths status={swarm.status} />
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
              <>
                <TabFacts tab={slot.tab} since={since} />
                {slot.tabs.length > 1 && <GroupTable tabs={slot.tabs} />}
              </>
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
          <span className="muted small">none (every tab trains; a stage whose last tab is lost is rebuilt and taken by a tab from the largest group or a newcomer)</span>
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
