/** Sample text from the model the swarm is training (the tabs run the forward passes). */
import { useState, type FormEvent } from 'react';

import type { Ack, SampleResult } from '../../../shared/protocol/operator';
import { parseStages } from '../skip-status';

type Call = <T extends object = object>(event: never, payload?: unknown, timeoutMs?: number) => Promise<Ack<T>>;

/**
 * `present`: the stages served now (skip-status.ts servedSubset); while one is vacant and the
 * stages field is empty, the sample runs through these (a partial model) instead of waiting.
 */
export function Sampler({ call, disabled, present }: { call: Call; disabled: boolean; present?: number[] | null }) {
  const [prompt, setPrompt] = useState('Call me Ishmael. ');
  const [length, setLength] = useState(48);
  const [temperature, setTemperature] = useState(0.8);
  /** SkipPipe: sample through these stages only ('' = the full model). */
  const [stages, setStages] = useState('');
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<SampleResult | null>(null);
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const subset = stages.trim() ? parseStages(stages) : (present ?? undefined);
    if (subset === null) return setError('stages: numbers separated by commas, e.g. 0,2,3 (empty: the full model)');
    setBusy(true);
    setError(null);
    const r = await call<{ result: SampleResult }>('sample' as never, { prompt, length, temperature, seed: Math.floor(Math.random() * 1e9), ...(subset ? { stages: subset } : {}) }, 600_000);
    setBusy(false);
    if (r.ok) setResult(r.result);
    else setError(r.error);
  };

  return (
    <section className="panel span-6" aria-labelledby="sample-title">
      <header className="panel-head">
        <h2 id="sample-title">Sample text</h2>
        <span className="muted small">byte-level · one pipeline pass per byte</span>
      </header>
      <form onSubmit={submit} className="sampler">
        <textarea value={prompt} onChange={(e) => setPrompt(e.target.value)} rows={2} maxLength={2000} aria-label="prompt" data-testid="sample-prompt" />
        <div className="control-row wrap">
          <label className="inline">
            bytes
            <input type="number" min={1} max={512} value={length} onChange={(e) => setLength(Number(e.target.value))} />
          </label>
          <label className="inline">
            temperature
            <input type="number" min={0} max={5} step={0.1} value={temperature} onChange={(e) => setTemperature(Number(e.target.value))} />
          </label>
          <label className="inline">
            stages
            <input value={stages} onChange={(e) => setStages(e.target.value)} size={10} placeholder="all" aria-label="sample through these stages only" data-testid="sample-stages" />
          </label>
          {!stages.trim() && present && <small className="muted" data-testid="sample-present">a stage has no volunteer: sampling through stages {present.join(',')}</small>}
          <button type="submit" className="primary" disabled={busy || disabled} data-testid="sample">
            {busy ? 'Sampling…' : 'Generate'}
          </button>
        </div>
      </form>
      {error && <p className="error small">{error}</p>}
      {result && (
        <div className="sample-out" data-testid="sample-output">
          <pre>
            <span className="muted">{result.prompt}</span>
            <strong>{result.text}</strong>
          </pre>
          <small className="muted">
            {result.tokens.length} bytes in {(result.ms / 1000).toFixed(1)} s at iteration {result.iteration}
            {temperature === 0 ? ' (greedy)' : ''}
          </small>
        </div>
      )}
    </section>
  );
}
