/**
 * `--transport p2p|auto` (docs/p2p.md): frames that were meant to go tab to tab but went through
 * the relay, by reason, the pairs that are relay-only for a back-off now, and each link's figures
 * as its tab last reported them (ping round trip, frame-to-acknowledgement time, frames, bytes).
 */
import type { P2pSummary } from '../../../shared/protocol/operator';

const ms = (x: number | null) => (x === null ? '–' : x < 10 ? x.toFixed(1) : Math.round(x).toString());
const mib = (b: number) => (b / 2 ** 20).toFixed(1);
const stage = (s: number | null) => (s === null ? '?' : String(s));

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
      {p2p.pairs && p2p.pairs.length > 0 && (
        <table data-testid="p2p-pairs">
          <thead>
            <tr>
              <th>link</th>
              <th>stages</th>
              <th>state</th>
              <th>RTT ms</th>
              <th>frame ms</th>
              <th>frames sent</th>
              <th>MiB sent</th>
              <th>MiB received</th>
            </tr>
          </thead>
          <tbody>
            {p2p.pairs.map((p) => (
              <tr key={`${p.from}>${p.to}`}>
                <td className="mono">
                  {p.from} → {p.to}
                </td>
                <td>
                  {stage(p.fromStage)} → {stage(p.toStage)}
                </td>
                <td>{p.state}</td>
                <td>{ms(p.rttMs)}</td>
                <td>{ms(p.frameMs)}</td>
                <td>{p.framesSent}</td>
                <td>{mib(p.bytesSent)}</td>
                <td>{mib(p.bytesReceived)}</td>
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
