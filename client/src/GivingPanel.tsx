/**
 * "See what you give": this tab's and this browser's contribution, the swarm's volunteers, and the
 * public top-contributors table (nicknames only; this browser's row marked), with the opt-in
 * nickname form.
 */
import { useId, useState, type FormEvent } from 'react';
import { compact, duration } from './format';
import { nicknameSchema, NICKNAME_MAX } from '../../shared/protocol/events';
import type { BrowserTotals } from './local-identity';
import type { Contributors, PublicSwarm } from './usePublicSwarm';

interface Props {
  tab: BrowserTotals;
  browser: BrowserTotals;
  swarm: PublicSwarm | null;
  contributors: Contributors | null;
  nickname: string | null;
  onNickname: (nickname: string | null) => void;
  running: boolean;
}

function TotalsRow({ label, testId, t }: { label: string; testId: string; t: BrowserTotals }) {
  return (
    <tr data-testid={testId}>
      <th scope="row">{label}</th>
      <td data-value={t.tokens}>{compact(t.tokens)}</td>
      <td>{duration(t.gpuSeconds, true)}</td>
      <td data-value={t.microbatches}>{t.microbatches}</td>
    </tr>
  );
}

export function GivingPanel(p: Props) {
  const id = useId();
  const [draft, setDraft] = useState(p.nickname ?? '');
  const [error, setError] = useState<string | null>(null);
  const save = (e: FormEvent) => {
    e.preventDefault();
    const value = draft.trim();
    if (value === '') {
      setError(null);
      p.onNickname(null);
      return;
    }
    const parsed = nicknameSchema.safeParse(value);
    if (!parsed.success) {
      setError(parsed.error.issues[0]?.message ?? 'not a valid nickname');
      return;
    }
    setError(null);
    p.onNickname(parsed.data);
  };
  return (
    <section className="panel giving" aria-labelledby={`${id}-h`}>
      <h2 id={`${id}-h`}>What you give</h2>
      <table className="totals" data-testid="totals">
        <thead>
          <tr>
            <th scope="col"></th>
            <th scope="col">Tokens</th>
            <th scope="col">GPU time</th>
            <th scope="col">Microbatches</th>
          </tr>
        </thead>
        <tbody>
          <TotalsRow label="This tab" testId="totals-tab" t={p.tab} />
          <TotalsRow label="This browser, all visits" testId="totals-browser" t={p.browser} />
        </tbody>
      </table>
      <p data-testid="swarm-volunteers">
        {p.swarm
          ? `${p.swarm.volunteers} volunteer${p.swarm.volunteers === 1 ? '' : 's'} in the swarm now (${p.swarm.active} training, ${p.swarm.spares} standing by); ${p.swarm.contributors} browser${p.swarm.contributors === 1 ? '' : 's'} have contributed to this run.`
          : 'Swarm size: —'}
      </p>
      <h3>Top contributors</h3>
      <table className="top" data-testid="top-contributors">
        <caption className="sr-only">Top contributors by tokens processed</caption>
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">Name</th>
            <th scope="col">Tokens</th>
            <th scope="col">GPU time</th>
            <th scope="col">Microbatches</th>
          </tr>
        </thead>
        <tbody>
          {(p.contributors?.top ?? []).map((r) => (
            <tr key={r.rank} className={r.mine ? 'mine' : undefined} data-mine={r.mine ? 'true' : undefined}>
              <td>{r.rank}</td>
              <td>
                {r.nickname ?? <span className="anon">anonymous</span>}
                {r.mine && <strong> (you)</strong>}
              </td>
              <td>{compact(r.tokens)}</td>
              <td>{duration(r.gpuMs / 1000)}</td>
              <td>{r.microbatches}</td>
            </tr>
          ))}
          {(p.contributors?.top.length ?? 0) === 0 && (
            <tr>
              <td colSpan={5}>Nobody yet: be the first.</td>
            </tr>
          )}
        </tbody>
      </table>
      {p.contributors?.me && !p.contributors.top.some((r) => r.mine) && <p data-testid="my-rank">You are number {p.contributors.me.rank}.</p>}
      <form className="nickname" onSubmit={save} noValidate>
        <label htmlFor={`${id}-nick`}>Nickname for the public table (optional)</label>
        <input
          id={`${id}-nick`}
          type="text"
          maxLength={NICKNAME_MAX}
          value={draft}
          autoComplete="nickname"
          aria-describedby={`${id}-nick-hint`}
          aria-invalid={error ? true : undefined}
          data-testid="nickname-input"
          onChange={(e) => setDraft(e.currentTarget.value)}
        />
        <button type="submit" data-testid="nickname-save">
          {draft.trim() ? 'Show this name' : 'Stay anonymous'}
        </button>
        <p id={`${id}-nick-hint`} className="hint">
          Up to {NICKNAME_MAX} letters, digits, spaces, _ - . Shown next to your totals; leave empty to stay anonymous.
          {p.running && ' Takes effect the next time this tab joins (Pause and Resume).'}
        </p>
        {error && (
          <p className="error" role="alert" data-testid="nickname-error">
            {error}
          </p>
        )}
      </form>
    </section>
  );
}
