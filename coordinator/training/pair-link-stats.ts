/**
 * The per-pair link figures tabs report in their `stats` heartbeat (shared/protocol/pair-stats.ts,
 * validated on arrival), as rows for the dashboard and Prometheus: one row per (tab, peer) link,
 * with both ends' stages as the coordinator knows them now. Bounded: at most 32 rows per tab.
 */
import type { Volunteer } from '../tabs/registry.js';

export interface PairLinkRow {
  from: string;
  to: string;
  fromStage: number | null;
  toStage: number | null;
  state: 'connecting' | 'open' | 'down';
  rttMs: number | null;
  frameMs: number | null;
  framesSent: number;
  bytesSent: number;
  framesReceived: number;
  bytesReceived: number;
}

export function pairLinkRows(volunteers: readonly Volunteer[]): PairLinkRow[] {
  const stageOf = new Map(volunteers.map((v) => [v.id, v.stage]));
  const rows: PairLinkRow[] = [];
  for (const v of volunteers) {
    for (const l of v.stats?.links ?? []) {
      rows.push({ from: v.id, to: l.peer, fromStage: v.stage, toStage: stageOf.get(l.peer) ?? null, state: l.state, rttMs: l.rttMs, frameMs: l.frameMs, framesSent: l.framesSent, bytesSent: l.bytesSent, framesReceived: l.framesReceived, bytesReceived: l.bytesReceived });
    }
  }
  return rows;
}

/**
 * Mean RTT and frame time per (from stage, to stage): Prometheus labels stay bounded by the
 * stage count whatever the tabs call their peers. Rows with an unknown stage are left out.
 */
export function stagePairMeans(rows: readonly PairLinkRow[]): { fromStage: number; toStage: number; rttMs: number | null; frameMs: number | null }[] {
  const acc = new Map<string, { fromStage: number; toStage: number; rtt: number[]; frame: number[] }>();
  for (const r of rows) {
    if (r.fromStage === null || r.toStage === null) continue;
    const key = `${r.fromStage}>${r.toStage}`;
    let a = acc.get(key);
    if (!a) acc.set(key, (a = { fromStage: r.fromStage, toStage: r.toStage, rtt: [], frame: [] }));
    if (r.rttMs !== null) a.rtt.push(r.rttMs);
    if (r.frameMs !== null) a.frame.push(r.frameMs);
  }
  const mean = (xs: number[]) => (xs.length ? xs.reduce((x, y) => x + y, 0) / xs.length : null);
  return [...acc.values()].map((a) => ({ fromStage: a.fromStage, toStage: a.toStage, rttMs: mean(a.rtt), frameMs: mean(a.frame) }));
}
