/**
 * Per-hop timing marks for benchmarks (issue 23: where a hop's time goes, relay vs peer to peer).
 * Off unless a process sets a sink (bench/p2p-swarm.ts does, for the coordinator and each
 * volunteer process); then the volunteer agent, PeerFrames and the coordinator mark when a
 * frame's milestones happen, keyed by the frame (kind, iteration, microbatch, sender's hop), with
 * wall-clock times in ms (`performance.timeOrigin + performance.now()`, comparable between
 * processes of one machine). bench/hop-breakdown.ts turns the marks into per-hop segments.
 *
 * Marks (in the order a frame meets them):
 *   done        sender: the task's compute ended (its output frame exists)
 *   paced       sender: the paced task's minimum duration is over (bench pacing only)
 *   written     sender, p2p: the frame's last chunk was handed to the data channel
 *   acked       sender, p2p: the peer's acknowledgement arrived
 *   coord.out   coordinator: the sender's `out` arrived (relay: with the frame; p2p: the report)
 *   coord.task  coordinator: the receiver's task was emitted
 *   recv.frame  receiver, p2p: the frame is complete at the receiver
 *   recv.task   receiver: the task arrived (relay: with the frame)
 *   recv.start  receiver: the task starts computing on the frame
 */
import { inspectTensorFrame } from '../protocol/codec.js';

export type HopMark = 'done' | 'paced' | 'written' | 'acked' | 'coord.out' | 'coord.task' | 'recv.frame' | 'recv.task' | 'recv.start';

export interface HopTraceEvent {
  mark: HopMark;
  /** `${kind}:${iteration}:${microbatch}:${hop}` of the frame (hop: the sender's). */
  key: string;
  /** Wall-clock ms. */
  t: number;
}

let sink: ((e: HopTraceEvent) => void) | null = null;

/** Starts (a function) or stops (null) tracing in this process. */
export function setHopTraceSink(s: ((e: HopTraceEvent) => void) | null): void {
  sink = s;
}

export function hopTracing(): boolean {
  return sink !== null;
}

/** Wall-clock ms with sub-millisecond resolution; `perfNow` converts a `performance.now()` reading. */
export function traceNow(perfNow: number = performance.now()): number {
  return performance.timeOrigin + perfNow;
}

export function hopKey(kind: string, iteration: number, mb: number, hop: number): string {
  return `${kind}:${iteration}:${mb}:${hop}`;
}

/** Records a mark when tracing is on; `t` defaults to now. */
export function markHop(mark: HopMark, key: string | (() => string | null), t?: number): void {
  if (!sink) return;
  const k = typeof key === 'function' ? key() : key;
  if (k !== null) sink({ mark, key: k, t: t ?? traceNow() });
}

/**
 * The trace key of the frame a task takes as input: its `inputFrom` (peer to peer) or the header
 * of the relayed frame that came with it; null for a task whose input is not a hop's frame.
 */
export function taskInputKey(meta: { iteration: number; mb: number; inputFrom?: { kind: string; hop: number } }, input: Uint8Array | null | undefined): string | null {
  if (meta.inputFrom) return hopKey(meta.inputFrom.kind, meta.iteration, meta.mb, meta.inputFrom.hop);
  if (!input) return null;
  try {
    const { header } = inspectTensorFrame(input);
    return header.kind === 'act' || header.kind === 'grad' ? hopKey(header.kind, header.iteration, header.microbatch, header.hop) : null;
  } catch {
    return null;
  }
}
