/** The event log: newest first, filterable by kind and text; recoveries show their numbers. */
import { useMemo, useState } from 'react';

import { EVENT_KINDS, type EventRow } from '../../../shared/protocol/operator';
import { clock, num } from '../format';

const SHOWN = 300;

function RecoveryDetails({ d }: { d: Record<string, unknown> }) {
  const sources = Array.isArray(d.sources) ? (d.sources as { stage: number; part?: string }[]) : [];
  const parts: string[] = [];
  if (d.strategy) parts.push(`strategy ${String(d.strategy)}`);
  if (d.method) parts.push(`method ${String(d.method)}${d.fallback ? ' (fallback)' : ''}`);
  if (sources.length) parts.push(`sources ${sources.map((s) => `${s.stage}${s.part ? `:${s.part}` : ''}`).join(', ')}`);
  if (typeof d.bytesMoved === 'number') parts.push(`${(d.bytesMoved / 1024).toFixed(1)} KiB`);
  if (typeof d.seconds === 'number') parts.push(`${num(d.seconds, 2)} s`);
  if (d.lossBefore != null || d.lossAfter != null) parts.push(`loss ${num(d.lossBefore as number | null, 4)} → ${num(d.lossAfter as number | null, 4)}`);
  if (!parts.length) return null;
  return <div className="event-details">{parts.join(' · ')}</div>;
}

export function EventLog({ events, title = 'Event log' }: { events: EventRow[]; title?: string }) {
  const [hidden, setHidden] = useState<Set<string>>(() => new Set());
  const [text, setText] = useState('');
  const counts = useMemo(() => {
    const c = new Map<string, number>();
    for (const e of events) c.set(e.kind, (c.get(e.kind) ?? 0) + 1);
    return c;
  }, [events]);
  const kinds = useMemo(() => [...new Set([...EVENT_KINDS, ...counts.keys()])], [counts]);
  const shown = useMemo(() => {
    const q = text.trim().toLowerCase();
    const out: EventRow[] = [];
    for (let i = events.length - 1; i >= 0 && out.length < SHOWN; i--) {
      const e = events[i]!;
      if (hidden.has(e.kind)) continue;
      if (q && !e.message.toLowerCase().includes(q) && !e.kind.includes(q)) continue;
      out.push(e);
    }
    return out;
  }, [events, hidden, text]);
  const toggle = (k: string) =>
    setHidden((h) => {
      const n = new Set(h);
      if (n.has(k)) n.delete(k);
      else n.add(k);
      return n;
    });
  return (
    <section className="panel span-8" aria-labelledby="log-title">
      <header className="panel-head">
        <h2 id="log-title">{title}</h2>
        <span className="muted small">
          {shown.length} of {events.length}
        </span>
      </header>
      <div className="filters" role="group" aria-label="event kinds">
        {kinds.map((k) => (
          <button
            key={k}
            type="button"
            className={`filter kind-${k}${hidden.has(k) ? ' off' : ''}`}
            aria-pressed={!hidden.has(k)}
            onClick={() => toggle(k)}
            data-testid={`filter-${k}`}
          >
            {k} <span className="count">{counts.get(k) ?? 0}</span>
          </button>
        ))}
        <input type="search" placeholder="Filter text…" value={text} onChange={(e) => setText(e.target.value)} aria-label="filter events by text" />
      </div>
      <ol className="events" data-testid="event-log">
        {shown.map((e, i) => (
          <li key={`${e.time}-${i}-${e.kind}`} className={`event kind-${e.kind}`} data-kind={e.kind}>
            <time dateTime={new Date(e.time).toISOString()} title={new Date(e.time).toString()}>
              {clock(e.time)}
            </time>
            <span className={`kind kind-${e.kind}`}>{e.kind}</span>
            <div className="event-body">
              <div className="event-message">{e.message}</div>
              {e.kind === 'recovery' && e.data && <RecoveryDetails d={e.data} />}
            </div>
          </li>
        ))}
        {shown.length === 0 && <li className="muted">No events match.</li>}
      </ol>
    </section>
  );
}
