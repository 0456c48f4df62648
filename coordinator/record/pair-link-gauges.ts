/**
 * Prometheus gauges of the tabs' per-pair link figures (coordinator/training/pair-link-stats.ts):
 * `swarm_p2p_link_rtt_ms` and `swarm_p2p_link_frame_ms`, labelled by the sending and receiving
 * stage (bounded by the stage count), the mean over the links between those stages; computed at
 * each scrape from the tabs' latest heartbeats.
 */
import { Gauge, type Registry } from 'prom-client';
import { stagePairMeans, type PairLinkRow } from '../training/pair-link-stats.js';

export function registerPairLinkGauges(registry: Registry, rows: () => PairLinkRow[]): void {
  const labelNames = ['from_stage', 'to_stage'] as const;
  const gauge = (name: string, help: string, pick: (m: ReturnType<typeof stagePairMeans>[number]) => number | null) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const m of stagePairMeans(rows())) {
          const v = pick(m);
          if (v !== null) this.set({ from_stage: String(m.fromStage), to_stage: String(m.toStage) }, v);
        }
      },
    });
  gauge('swarm_p2p_link_rtt_ms', 'Ping round trip on the tabs\' WebRTC links, ms, mean per stage pair (tabs\' heartbeats)', (m) => m.rttMs);
  gauge('swarm_p2p_link_frame_ms', 'Frame handed to a WebRTC link until the peer acknowledged it, ms, mean per stage pair', (m) => m.frameMs);
}
