/**
 * SkipPipe on the dashboard (docs/skippipe.md): each stage's microbatches in the last iteration
 * and, for a stage that ran none, why: no volunteer serves it (trained around until one arrives)
 * or the skip ratio left it out this time. Nothing is shown for a run on full paths.
 */
import type { RunStatus } from '../../../shared/protocol/events';
import { stageSkips } from '../skip-status';

const WHY = { vacant: 'skipped: no volunteer', ratio: 'sat out this iteration' } as const;

export function SkipPaths({ status }: { status: RunStatus }) {
  if (!status.skip) return null;
  const rows = stageSkips(status.skip, status.stages);
  return (
    <p className="muted skip-paths" data-testid="skip-paths">
      Partial pipelines (skip ratio {status.skip.ratio}):{' '}
      {rows.map((r, i) => (
        <span key={r.stage} data-testid={`skip-stage-${r.stage}`} data-skipped={r.skipped ?? 'no'} className={r.skipped === 'vacant' ? 'warn' : undefined}>
          {i > 0 ? ' · ' : ''}stage {r.stage}: {r.skipped ? WHY[r.skipped] : r.visits === null ? '—' : `${r.visits} microbatch${r.visits === 1 ? '' : 'es'}`}
        </span>
      ))}
    </p>
  );
}
