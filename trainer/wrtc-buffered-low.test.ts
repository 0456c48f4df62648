import { describe, it, expect } from 'vitest';
import { withBufferedAmountLow, type PolledChannel } from './wrtc-buffered-low.js';
import { until } from '../testing/until.js';

/** A stand-in for a wrtc channel: `send` queues bytes, the test drains them. */
function fakeChannel(): PolledChannel & { sent: number; lows: number; onbufferedamountlow: (() => void) | null } {
  const ch = {
    bufferedAmount: 0,
    bufferedAmountLowThreshold: 0,
    readyState: 'open' as RTCDataChannelState,
    sent: 0,
    lows: 0,
    onbufferedamountlow: null as (() => void) | null,
    send(data: Uint8Array) {
      ch.sent += data.byteLength;
      ch.bufferedAmount += data.byteLength;
    },
  };
  return ch;
}

describe('withBufferedAmountLow (libwebrtc channels fire no bufferedamountlow)', () => {
  it('fires once when the buffer drains from above the threshold to it, and again only after another crossing', async () => {
    const ch = withBufferedAmountLow(fakeChannel(), 1);
    ch.bufferedAmountLowThreshold = 100;
    let lows = 0;
    ch.onbufferedamountlow = () => void lows++;
    ch.send(new Uint8Array(300) as never);
    expect(ch.sent).toBe(300); // the native send still runs
    await new Promise((r) => setTimeout(r, 20));
    expect(lows).toBe(0); // 300 > 100: no event yet
    ch.bufferedAmount = 100;
    await until(() => lows === 1, 'the low event', 2000);
    await new Promise((r) => setTimeout(r, 20));
    expect(lows).toBe(1); // staying low fires nothing more
    ch.send(new Uint8Array(50) as never); // 150 > 100: armed again
    ch.bufferedAmount = 0;
    await until(() => lows === 2, 'the second low event', 2000);
  });

  it('a send that leaves the buffer at or under the threshold arms nothing; a closed channel or a cleared handler stops the poll', async () => {
    const ch = withBufferedAmountLow(fakeChannel(), 1);
    ch.bufferedAmountLowThreshold = 1000;
    let lows = 0;
    ch.onbufferedamountlow = () => void lows++;
    ch.send(new Uint8Array(500) as never);
    ch.bufferedAmount = 0;
    await new Promise((r) => setTimeout(r, 20));
    expect(lows).toBe(0);
    ch.send(new Uint8Array(5000) as never);
    ch.readyState = 'closed';
    ch.bufferedAmount = 0;
    await new Promise((r) => setTimeout(r, 20));
    expect(lows).toBe(0);
    ch.readyState = 'open';
    ch.send(new Uint8Array(5000) as never);
    ch.onbufferedamountlow = null;
    ch.bufferedAmount = 0;
    await new Promise((r) => setTimeout(r, 20));
    expect(lows).toBe(0);
    expect(() => (ch.bufferedAmountLowThreshold = -1)).toThrow(RangeError);
  });
});
