/**
 * `--recovery cpsr` / `stage-restore` (docs/cpsr.md): the checkpoint interval in force and where
 * it came from, each stage's latest background fit (its held-out error relative to the plain
 * restore's), the fitting worker, and the last stage restored (from which checkpoint, how far
 * the prediction went).
 */
import type { CpsrStatus } from '../../../shared/protocol/operator';
import { clock, duration, num } from '../format';

export function CpsrPanel({ cpsr }: { cpsr: CpsrStatus }) {
  const { plan, fits, worker, lastRestore } = cpsr;
  return (
    <section className="panel span-6" aria-labelledby="cpsr-title" data-testid="cpsr-panel">
      <header className="panel-head">
        <h2 id="cpsr-title">CPSR</h2>
        <span className="muted small">stage restore · predictor · checkpoint planner</span>
      </header>
      <dl className="facts">
        <div>
          <dt>checkpoint every</dt>
          <dd data-testid="cpsr-interval">
            {plan ? `${plan.interval} it (${plan.source === 'cpsr' ? `eq. 16: ${num(plan.cpsr, 1)}` : 'Young/Daly'})` : '-'}
          </dd>
        </div>
        <div>
          <dt>Young/Daly</dt>
          <dd>{plan ? `${num(plan.youngDaly, 1)} it` : '-'}</dd>
        </div>
        <div>
          <dt>last restore</dt>
          <dd data-testid="cpsr-restore">
            {lastRestore
              ? `stage ${lastRestore.stage} at ${lastRestore.iteration} from checkpoint ${lastRestore.checkpoint}; ${lastRestore.predicted ? `predicted ${lastRestore.horizon} it forward (error ${num(lastRestore.valRatio, 3)} of plain)` : `plain restore, ${lastRestore.horizon} it behind`} · ${clock(lastRestore.at)}`
              : 'none yet'}
          </dd>
        </div>
        {worker && (
          <div>
            <dt>fitting worker</dt>
            <dd>
              {num(worker.peakBytes / 2 ** 20, 0)} MiB peak · {duration(worker.fitSeconds)} fitting{worker.lastFailure ? ` · last failure: ${worker.lastFailure}` : ''}
            </dd>
          </div>
        )}
      </dl>
      {plan?.reason && <p className="muted small">{plan.reason}</p>}
      {fits.length > 0 && (
        <table className="small" data-testid="cpsr-fits">
          <thead>
            <tr>
              <th>stage</th>
              <th>checkpoints</th>
              <th>up to it</th>
              <th>held-out error vs plain</th>
              <th>usable</th>
            </tr>
          </thead>
          <tbody>
            {fits.map((f) => (
              <tr key={f.stage}>
                <td>{f.stage}</td>
                <td>{f.checkpoints}</td>
                <td>{f.lastIteration ?? '-'}</td>
                <td>{num(f.valRatio, 3)}</td>
                <td>{f.usable ? 'yes' : 'no'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
