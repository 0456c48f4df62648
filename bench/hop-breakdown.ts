/**
 * Where a hop's time goes (issue 23): turns the hop-trace marks of one run
 * (shared/transport/hop-trace.ts) into per-frame segments, summarised by their median, next to
 * what the link model predicts. Pure: bench/p2p-swarm.ts collects the marks and prints the rows.
 *
 * A hop is one activation or gradient frame, from the moment its sender's (paced) task ended to
 * the moment the receiver has both its task and the frame. Segments:
 *   relay: up = paced -> coord.out (sender's uplink + latency), coord = coord.out -> coord.task,
 *          down = coord.task -> recv.task (receiver's downlink + latency)
 *   p2p:   wire = paced -> recv.frame (link queue, uplink, coturn, downlink, latencies),
 *          ack = recv.frame -> acked (the acknowledgement's way back),
 *          report = the sender's `sent` on its way: paced -> coord.out for an early report (sent as
 *          the frame is handed to a link that already carried one, before the ack; docs/p2p.md
 *          #the-early-report), acked -> coord.out for a report sent on the ack (a link's first frame),
 *          coord = coord.out -> coord.task, down = coord.task -> recv.task
 *          (with early reports, ack is off the hop's path: report, coord and down run beside wire)
 *   both:  hop = paced -> ready (receiver has task and frame), wait = ready -> recv.start
 *          (the receiver was busy with another task)
 */
import type { HopMark, HopTraceEvent } from '../shared/transport/hop-trace.js';

export const SEGMENTS = ['pace', 'up', 'wire', 'ack', 'report', 'coord', 'down', 'hop', 'wait'] as const;
export type Segment = (typeof SEGMENTS)[number];

type Marks = Partial<Record<HopMark, number>>;

/** Marks by frame key; the first mark of each kind wins (a retried frame keeps its first times). */
export function groupMarks(events: readonly HopTraceEvent[], keep: (key: string) => boolean = () => true): Map<string, Marks> {
  const byKey = new Map<string, Marks>();
  for (const e of events) {
    if (!keep(e.key)) continue;
    let m = byKey.get(e.key);
    if (!m) byKey.set(e.key, (m = {}));
    if (m[e.mark] === undefined) m[e.mark] = e.t;
  }
  return byKey;
}

function span(a: number | undefined, b: number | undefined): number | null {
  return a === undefined || b === undefined ? null : b - a;
}

/** One hop's segments in ms (null where a mark is missing or the segment does not apply). */
export function hopSegments(m: Marks): Record<Segment, number | null> {
  const p2p = m['recv.frame'] !== undefined || m.acked !== undefined;
  const ready = p2p ? (m['recv.frame'] === undefined || m['recv.task'] === undefined ? undefined : Math.max(m['recv.frame'], m['recv.task'])) : m['recv.task'];
  const early = m['coord.out'] !== undefined && (m.acked === undefined || m['coord.out'] < m.acked);
  return {
    pace: span(m.done, m.paced),
    up: p2p ? null : span(m.paced, m['coord.out']),
    wire: p2p ? span(m.paced, m['recv.frame']) : null,
    ack: p2p ? span(m['recv.frame'], m.acked) : null,
    report: p2p ? span(early ? m.paced : m.acked, m['coord.out']) : null,
    coord: span(m['coord.out'], m['coord.task']),
    down: span(m['coord.task'], m['recv.task']),
    hop: span(m.paced, ready),
    wait: span(ready, m['recv.start']),
  };
}

export function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Median of each segment over the hops, and how many hops had every mark of `hop`. */
export function summarise(byKey: Map<string, Marks>): { medians: Record<Segment, number | null>; hops: number } {
  const cols = Object.fromEntries(SEGMENTS.map((s) => [s, [] as number[]])) as Record<Segment, number[]>;
  let hops = 0;
  for (const m of byKey.values()) {
    const seg = hopSegments(m);
    if (seg.hop !== null) hops++;
    for (const s of SEGMENTS) if (seg[s] !== null) cols[s].push(seg[s]!);
  }
  return { medians: Object.fromEntries(SEGMENTS.map((s) => [s, median(cols[s])])) as Record<Segment, number | null>, hops };
}

/**
 * The link model's hop time, ms: a frame of `bytes` crosses `links` shaped links of `mbps` in
 * series, store-and-forward (the relay: the coordinator takes the whole frame before sending it
 * on) or cut-through (p2p: coturn forwards each datagram), plus `latencies` one-way delays.
 */
export function modelHopMs(bytes: number, mbps: number, latencyMs: number, path: 'relay' | 'p2p'): number {
  const serialise = (bytes * 8) / (mbps * 1000); // ms on one link
  return path === 'relay' ? 2 * serialise + 2 * latencyMs : serialise + 2 * latencyMs;
}

/**
 * Time to deliver `bytes` by a sender that starts from a congestion window of `window` segments
 * of `segmentBytes` and doubles it each round trip of `rttMs` (slow start, no loss): n rounds
 * with window x segment x (2^n - 1) >= bytes; the last round adds the one-way delay and the
 * serialisation at `mbps`.
 */
export function slowStartMs(bytes: number, mbps: number, oneWayMs: number, rttMs: number, segmentBytes: number, window: number): number {
  const rounds = Math.max(1, Math.ceil(Math.log2(bytes / (window * segmentBytes) + 1)));
  return (rounds - 1) * rttMs + oneWayMs + (bytes * 8) / (mbps * 1000);
}

/**
 * A p2p frame's `wire` time (handed to the link -> complete at the receiver) if the frame starts
 * from a congestion window of `windowMtus` and doubles it each round trip: what libdatachannel's
 * SCTP does after an idle gap (its max burst of 10 MTUs cuts the window to flight + 10 MTUs; see
 * docs/p2p.md). Through coturn the round trip is 4 x `latencyMs` (each side's one-way, both ways)
 * and a frame travels 2 x `latencyMs`.
 */
export function slowStartWireMs(bytes: number, mbps: number, latencyMs: number, mtuPayload = 1183, windowMtus = 10): number {
  return slowStartMs(bytes, mbps, 2 * latencyMs, 4 * latencyMs, mtuPayload, windowMtus);
}

/** TCP's payload per segment on the overlay of testing/tcp-overlay.ts: MTU 1450 less IP, TCP and timestamp headers. */
export const OVERLAY_MSS = 1450 - 20 - 20 - 12;

/**
 * A relayed frame's `up` (sender -> coordinator) or `down` (coordinator -> receiver) over one
 * volunteer link through kernel TCP (bench/p2p-swarm.ts --tcp-path kernel) if each frame starts
 * from TCP's initial window of 10 segments: Linux restarts a connection idle for longer than its
 * retransmission timeout from there (`tcp_slow_start_after_idle`, for loss-based congestion
 * controls such as reno and cubic; BBR keeps its rate estimate instead). The round trip is
 * 2 x `latencyMs`, the way one `latencyMs`.
 */
export function tcpSlowStartMs(bytes: number, mbps: number, latencyMs: number, mss = OVERLAY_MSS, initialWindow = 10): number {
  return slowStartMs(bytes, mbps, latencyMs, 2 * latencyMs, mss, initialWindow);
}
