/**
 * `--transport p2p|auto` (docs/p2p.md): frames that were meant to go tab to tab but went through
 * the relay, by reason, and the pairs that are relay-only for a back-off now.
 */
import type { P2pSummary } from '../../../shared/protocol/operator';

export function P2pPanel({ p2p }: { p2p: P2pSummary }) {
  const reasons = Object.entries(p2p.fallbacks).sort((a, b) => b[1] - a[1]);
  const total = reasons.reduce((n, [, k]) => n + k, 0);
  return (
    <section className="panel span-6" aria-labelledby="p2p-title" data-testid="p2p-panel">
      <header className="panel-head">
        <h2 id="p2p-title">Peer to peer</h2>
        <span className="muted">
          --transport {p2p.transport} · {total} fallback{total === 1 ? '' : 's'} to the relay
        </span>
      </header>
      {reasons.length === 0 ? (
        <p className="muted">Every frame went tab to tab.</p>
      ) : (
        <table data-testid="p2p-fallbacks">
          <thead>
            <tr>
              <th>reason</th>
              <th>frames</th>
            </tr>
          </thead>
          <tbody>
            {reasons.map(([reason, n]) => (
              <tr key={reason}>
                <td className="mono">{reason}</td>
                <td>{n}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {p2p.backedOff.length > 0 && (
        <p data-testid="p2p-backoff">
          Relay-only for now:{' '}
          {p2p.backedOff.map((b) => (
            <span key={b.pair} className="mono">
              {b.pair.replace('|', ' ↔ ')} ({b.seconds} s, {b.failures} failure{b.failures === 1 ? '' : 's'} in a row){' '}
            </span>
          ))}
        </p>
      )}
    </section>
  );
}
