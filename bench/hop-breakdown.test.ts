import { describe, it, expect } from 'vitest';
import { groupMarks, hopSegments, modelHopMs, OVERLAY_MSS, slowStartWireMs, summarise, tcpSlowStartMs } from './hop-breakdown.js';
import type { HopTraceEvent } from '../shared/transport/hop-trace.js';

const ev = (mark: HopTraceEvent['mark'], key: string, t: number): HopTraceEvent => ({ mark, key, t });

describe('hop breakdown', () => {
  it('splits a relayed hop into pace, uplink, coordinator, downlink and receiver wait', () => {
    const m = groupMarks([ev('done', 'act:3:0:1', 0), ev('paced', 'act:3:0:1', 100), ev('coord.out', 'act:3:0:1', 190), ev('coord.task', 'act:3:0:1', 192), ev('recv.task', 'act:3:0:1', 280), ev('recv.start', 'act:3:0:1', 300)]).get('act:3:0:1')!;
    expect(hopSegments(m)).toEqual({ pace: 100, up: 90, wire: null, ack: null, report: null, coord: 2, down: 88, hop: 180, wait: 20 });
  });

  it('splits a p2p hop into wire, ack, report, coordinator, task delivery; ready is the later of task and frame', () => {
    const k = 'grad:2:1:2';
    const m = groupMarks([ev('paced', k, 0), ev('written', k, 5), ev('recv.frame', k, 70), ev('acked', k, 110), ev('coord.out', k, 130), ev('coord.task', k, 131), ev('recv.task', k, 150), ev('recv.start', k, 150)]).get(k)!;
    expect(hopSegments(m)).toMatchObject({ up: null, wire: 70, ack: 40, report: 20, coord: 1, down: 19, hop: 150, wait: 0 });
    // The frame later than the task: the hop ends at the frame.
    const late = groupMarks([ev('paced', k, 0), ev('recv.task', k, 50), ev('recv.frame', k, 80), ev('acked', k, 90), ev('recv.start', k, 85)]).get(k)!;
    expect(hopSegments(late).hop).toBe(80);
  });

  it('times an early report from the paced end: it reaches the coordinator before the frame reaches the peer', () => {
    const k = 'act:2:0:1';
    const m = groupMarks([ev('paced', k, 0), ev('coord.out', k, 25), ev('coord.task', k, 26), ev('recv.task', k, 45), ev('recv.frame', k, 70), ev('acked', k, 110), ev('recv.start', k, 72)]).get(k)!;
    expect(hopSegments(m)).toMatchObject({ wire: 70, ack: 40, report: 25, coord: 1, down: 19, hop: 70, wait: 2 });
  });

  it('keeps the first mark of a kind, filters keys, and takes medians over complete hops', () => {
    const events = [ev('paced', 'act:0:0:0', 0), ev('recv.task', 'act:0:0:0', 10), ev('paced', 'act:1:0:0', 0), ev('recv.task', 'act:1:0:0', 30), ev('recv.task', 'act:1:0:0', 99), ev('paced', 'act:1:1:0', 0), ev('recv.task', 'act:1:1:0', 50), ev('paced', 'act:1:2:0', 0)];
    const { medians, hops } = summarise(groupMarks(events, (k) => Number(k.split(':')[1]) >= 1));
    expect(hops).toBe(2);
    expect(medians.hop).toBe(40);
    expect(medians.wire).toBeNull();
  });

  it('models a relayed hop as two store-and-forward links, a p2p hop as one cut-through path', () => {
    // 625 000 bytes at 50 Mbit/s = 100 ms per link.
    expect(modelHopMs(625_000, 50, 20, 'relay')).toBeCloseTo(240);
    expect(modelHopMs(625_000, 50, 20, 'p2p')).toBeCloseTo(140);
    // 256 KiB from a 10-MTU window: 11.8 KB x (2^5 - 1) >= 262 KB, so 4 round trips of 80 ms before the last one way.
    expect(slowStartWireMs(262_144, 50, 20)).toBeCloseTo(4 * 80 + 40 + 41.94, 1);
    // A frame within the first window: one way and its serialisation, as the link model.
    expect(slowStartWireMs(10_000, 50, 20)).toBeCloseTo(modelHopMs(10_000, 50, 20, 'p2p'));
  });

  it('models a relayed frame over kernel TCP as slow start from 10 segments over one link\'s round trip', () => {
    expect(OVERLAY_MSS).toBe(1398);
    // 256 KiB: 13 980 x (2^5 - 1) >= 262 144 > 13 980 x (2^4 - 1), so 4 round trips of 40 ms, then 20 ms and 41.94 ms of serialisation.
    expect(tcpSlowStartMs(262_144, 50, 20)).toBeCloseTo(4 * 40 + 20 + 41.94, 1);
    // Within the initial window: the way and the serialisation.
    expect(tcpSlowStartMs(13_000, 50, 20)).toBeCloseTo(20 + 2.08, 1);
  });
});
