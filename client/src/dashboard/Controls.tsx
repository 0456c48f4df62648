/** Operator controls: pause/resume, recovery strategy, failure injection, churn, model export. */
import { useState, type FormEvent } from 'react';

import type { Ack, ChurnConfig, SwarmSnapshot } from '../../../shared/protocol/operator';
import { exportLinkPath } from '../skip-status';

type Call = <T extends object = object>(event: never, payload?: unknown) => Promise<Ack<T>>;

export function Controls({ swarm, call, token }: { swarm: SwarmSnapshot; call: Call; token: string }) {
  const [busy, setBusy] = useState<string | null>(null);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const served = swarm.stages.filter((s) => s.state === 'training').map((s) => s.stage);
  const [victim, setVictim] = useState<number>(served[0] ?? 0);
  const [churnMode, setChurnMode] = useState<ChurnConfig['mode']>(swarm.churn.mode);
  const [probability, setProbability] = useState(swarm.churn.mode === 'iteration' ? swarm.churn.probability : 0.05);
  const [ratePct, setRatePct] = useState(swarm.churn.mode === 'hourly' ? swarm.churn.rate * 100 : 10);
  const [seed, setSeed] = useState(swarm.churn.mode === 'off' ? 1 : swarm.churn.seed);
  /** Stages to export ('' = the full model; a subset is a model of its own, docs/skippipe.md). */
  const [exportStages, setExportStages] = useState('');

  const act = async (what: string, event: string, payload?: unknown, done?: (r: Record<string, unknown>) => string) => {
    setBusy(what);
    setMessage(null);
    const r = await call<Record<string, unknown>>(event as never, payload);
    setBusy(null);
    if (r.ok) setMessage({ ok: true, text: done ? done(r) : `${what}: done` });
    else setMessage({ ok: false, text: `${what} failed: ${r.error}` });
  };

  // The token never goes into a URL: it buys a single-use download link (valid for a minute)
  // through the Authorization header, and the browser downloads from that link.
  const exportModel = async () => {
    setMessage(null);
    const link = exportLinkPath(exportStages);
    if ('error' in link) return setMessage({ ok: false, text: link.error });
    try {
      const r = await fetch(link.path, { headers: { authorization: `Bearer ${token}` }, cache: 'no-store' });
      const body = (await r.json()) as { url?: string; error?: string };
      if (!r.ok || !body.url) throw new Error(body.error ?? `HTTP ${r.status}`);
      const a = document.createElement('a');
      a.href = body.url;
      a.download = '';
      document.body.appendChild(a);
      a.click();
      a.remove();
    } catch (e) {
      setMessage({ ok: false, text: `export failed: ${(e as Error).message}` });
    }
  };

  const applyChurn = (e: FormEvent) => {
    e.preventDefault();
    const cfg: ChurnConfig =
      churnMode === 'off'
        ? { mode: 'off' }
        : churnMode === 'iteration'
          ? { mode: 'iteration', probability: Number(probability), seed: Math.trunc(Number(seed)) }
          : { mode: 'hourly', rate: Number(ratePct) / 100, seed: Math.trunc(Number(seed)) };
    void act('churn', 'churn', cfg, () => (cfg.mode === 'off' ? 'churn off' : 'churn on'));
  };

  const target = served.includes(victim) ? victim : (served[0] ?? victim);
  return (
    <section className="panel span-4 controls" aria-labelledby="controls-title">
      <header className="panel-head">
        <h2 id="controls-title">Controls</h2>
      </header>
      <div className="control-row">
        <button
          type="button"
          className={swarm.paused ? 'primary' : 'secondary'}
          disabled={busy !== null}
          data-testid="pause-toggle"
          onClick={() => void act(swarm.paused ? 'resume' : 'pause', 'pause', { paused: !swarm.paused }, () => (swarm.paused ? 'resumed' : 'pausing after this iteration'))}
        >
          {swarm.paused ? 'Resume' : 'Pause'}
        </button>
        <button
          type="button"
          className="secondary"
          disabled={swarm.exporting || busy !== null}
          data-testid="export"
          title="All stages' weights in one safetensors file (the run is held at an iteration boundary while it is assembled)"
          onClick={() => void exportModel()}
        >
          ⬇ Export model
        </button>
        <label className="inline">
          stages
          <input value={exportStages} onChange={(e) => setExportStages(e.target.value)} size={8} placeholder="all" aria-label="export only these stages" data-testid="export-stages" />
        </label>
      </div>

      <label className="field">
        <span>Recovery strategy for the next failure</span>
        <select
          value={swarm.strategy}
          disabled={busy !== null}
          data-testid="strategy"
          onChange={(e) => void act('strategy', 'set_strategy', { strategy: e.target.value }, () => `strategy: ${e.target.value}`)}
        >
          {swarm.strategies.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <small className="muted">
          Microbatch order stays as the run started ({swarm.swap ? 'CheckFree+ swapping' : 'in order'}).
        </small>
      </label>

      <div className="field">
        <span>Inject a failure</span>
        <div className="control-row">
          <select value={target} onChange={(e) => setVictim(Number(e.target.value))} aria-label="stage to fail" data-testid="inject-stage">
            {swarm.stages.map((s) => (
              <option key={s.stage} value={s.stage} disabled={s.state !== 'training'}>
                stage {s.stage}
                {s.tab ? ` (${s.tab.id})` : ` (${s.state})`}
              </option>
            ))}
          </select>
          <button
            type="button"
            className="danger"
            disabled={busy !== null || !served.includes(target)}
            data-testid="inject"
            onClick={() => void act('inject failure', 'inject_failure', { stage: target }, (r) => `dropped ${String(r.volunteer)} (stage ${target})`)}
          >
            ⚡ Fail stage {target}
          </button>
        </div>
      </div>

      <form className="field" onSubmit={applyChurn}>
        <span>
          Churn{' '}
          <small className="muted">
            ({swarm.churn.mode === 'off' ? 'off' : 'on'}, {swarm.churn.failures} failure{swarm.churn.failures === 1 ? '' : 's'} so far)
          </small>
        </span>
        <div className="control-row wrap">
          <select value={churnMode} onChange={(e) => setChurnMode(e.target.value as ChurnConfig['mode'])} aria-label="churn mode" data-testid="churn-mode">
            <option value="off">off</option>
            <option value="iteration">per iteration</option>
            <option value="hourly">per hour</option>
          </select>
          {churnMode === 'iteration' && (
            <label className="inline">
              p
              <input type="number" min={0} max={1} step={0.001} value={probability} onChange={(e) => setProbability(Number(e.target.value))} />
            </label>
          )}
          {churnMode === 'hourly' && (
            <label className="inline">
              %/h
              <input type="number" min={0} max={100} step={0.5} value={ratePct} onChange={(e) => setRatePct(Number(e.target.value))} />
            </label>
          )}
          {churnMode !== 'off' && (
            <label className="inline">
              seed
              <input type="number" min={0} step={1} value={seed} onChange={(e) => setSeed(Number(e.target.value))} />
            </label>
          )}
          <button type="submit" className="secondary" disabled={busy !== null}>
            Apply
          </button>
        </div>
        <small className="muted">Each stage's tab fails independently after every iteration with this probability (hourly: 1 − (1 − h)^(T/3600)).</small>
      </form>

      {message && (
        <p className={message.ok ? 'ok small' : 'error small'} role="status" data-testid="control-message">
          {message.text}
        </p>
      )}
    </section>
  );
}
