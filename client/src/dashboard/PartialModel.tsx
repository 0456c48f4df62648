/**
 * Run with part of the model (SkipPipe, docs/skippipe.md#run-with-part-of-the-model): the
 * validation loss of a chosen subset of the stages next to the full model's, measured by the tabs
 * on the same weights (the `partial_eval` event; the run pauses for it at an iteration boundary).
 * The sampler takes the same stage list.
 */
import { useState, type FormEvent } from 'react';
import type { Ack, PartialEvalResult } from '../../../shared/protocol/operator';
import { parseStages } from '../skip-status';

type Call = <T extends object = object>(event: never, payload?: unknown, timeoutMs?: number) => Promise<Ack<T>>;

export function PartialModel({ call, nStages, disabled }: { call: Call; nStages: number; disabled: boolean }) {
  const [text, setText] = useState(() => (nStages >= 2 ? Array.from({ length: nStages }, (_, s) => s).filter((s) => s % 2 === 0 || s === nStages - 1).join(',') : '0'));
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<PartialEvalResult | null>(null);
  const [error, setError] = useState<string | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const stages = parseStages(text);
    if (!stages) return setError('stages: numbers separated by commas, e.g. 0,2,3');
    setBusy(true);
    setError(null);
    const r = await call<{ result: PartialEvalResult }>('partial_eval' as never, { stages }, 600_000);
    setBusy(false);
    if (r.ok) setResult(r.result);
    else setError(r.error);
  };

  return (
    <section className="panel span-6" aria-labelledby="partial-title">
      <header className="panel-head">
        <h2 id="partial-title">Part of the model</h2>
        <span className="muted small">validation through a subset of the stages (first and last included)</span>
      </header>
      <form onSubmit={submit} className="control-row wrap">
        <label className="inline">
          stages
          <input value={text} onChange={(e) => setText(e.target.value)} size={16} aria-label="stages to run" data-testid="partial-stages" />
        </label>
        <button type="submit" className="primary" disabled={busy || disabled} data-testid="partial-eval">
          {busy ? 'Validating…' : 'Validate'}
        </button>
      </form>
      {error && <p className="error small">{error}</p>}
      {result && (
        <p className="small" data-testid="partial-result">
          stages {result.stages.join(',')} at iteration {result.iteration}: loss {result.loss.toFixed(4)}
          {result.fullLoss !== null ? ` · full model ${result.fullLoss.toFixed(4)} · perplexity ×${result.perplexityRatio!.toFixed(3)}` : ' · full model: a stage has no volunteer'}
        </p>
      )}
    </section>
  );
}
