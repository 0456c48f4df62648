/** Runs stored in the coordinator's SQLite history; pick one to review its charts and events. */
import type { RunSummary } from '../../../shared/protocol/operator';
import { dateTime, num } from '../format';

function describe(settings: Record<string, unknown>): string {
  const s = (settings.settings ?? settings) as Record<string, unknown>;
  const bits = [s.preset, s.stages != null ? `${String(s.stages)} stages` : null, s.recovery].filter(Boolean);
  return bits.join(' · ');
}

export function Runs({
  runs,
  viewing,
  onOpen,
  onRefresh,
}: {
  runs: RunSummary[];
  viewing: string | null;
  onOpen: (id: string | null) => void;
  onRefresh: () => void;
}) {
  return (
    <section className="panel span-4" aria-labelledby="runs-title">
      <header className="panel-head">
        <h2 id="runs-title">Runs</h2>
        <button type="button" className="link" onClick={onRefresh}>
          refresh
        </button>
      </header>
      <ol className="runs" data-testid="runs">
        {runs.map((r) => (
          <li key={r.id} className={viewing === r.id || (viewing === null && r.live) ? 'current' : undefined}>
            <button type="button" className="run" onClick={() => onOpen(r.live ? null : r.id)}>
              <span className="run-top">
                <span className="mono">{r.id}</span>
                {r.live && <span className="badge badge-training">live</span>}
              </span>
              <span className="muted small">
                {dateTime(r.created)} · {describe(r.settings)}
              </span>
              <span className="small">
                {r.iterations} iterations · train {num(r.lastTrainLoss, 3)} · val {num(r.lastValLoss, 3)}
              </span>
            </button>
          </li>
        ))}
        {runs.length === 0 && <li className="muted">No runs stored yet.</li>}
      </ol>
    </section>
  );
}
