/**
 * `bufferedamountlow` for @roamhq/wrtc's data channels, which never fire it (0.10.0 has no
 * bufferedAmountLowThreshold: measured, and the binding has no such name). PeerLink stops
 * writing while a channel's bufferedAmount is above its high-water mark and resumes on this
 * event, so without it a link whose buffer once filled would wait forever.
 *
 * The channel is polled every `pollMs` while a handler is set and its bufferedAmount is above
 * the threshold; when it drops to the threshold or below, the handler runs once (as a browser's
 * event does: on the crossing, not while it stays low). The poll starts on `send` and stops when
 * the channel closes or the handler is cleared.
 *
 * What it cannot fix: libwebrtc M106's bufferedAmount counts only what libwebrtc queued itself
 * after dcSCTP's own send queue (about 2 MB) refused more, so it reads 0 while up to that much
 * waits in dcSCTP (docs/p2p.md, "libwebrtc in Node").
 */

export interface PolledChannel {
  bufferedAmount: number;
  bufferedAmountLowThreshold: number;
  readyState: RTCDataChannelState;
  send(data: never): void;
}

/** Gives `channel` a working `onbufferedamountlow` (in place); returns it. */
export function withBufferedAmountLow<C extends PolledChannel>(channel: C, pollMs = 5): C {
  let handler: ((this: RTCDataChannel, ev: Event) => unknown) | null = null;
  let threshold = 0;
  let timer: ReturnType<typeof setInterval> | null = null;
  const stop = () => {
    if (timer !== null) clearInterval(timer);
    timer = null;
  };
  const check = () => {
    if (channel.readyState !== 'open' || handler === null) return stop();
    if (channel.bufferedAmount > threshold) return; // still above: keep polling
    stop();
    handler.call(channel as unknown as RTCDataChannel, new Event('bufferedamountlow'));
  };
  const arm = () => {
    // Armed only while above the threshold: a crossing from above is the event.
    if (timer === null && handler !== null && channel.bufferedAmount > threshold) timer = setInterval(check, pollMs);
  };
  const send = channel.send.bind(channel) as (data: unknown) => void;
  Object.defineProperties(channel, {
    onbufferedamountlow: {
      configurable: true,
      get: () => handler,
      set: (h: typeof handler) => {
        handler = typeof h === 'function' ? h : null;
        if (handler === null) stop();
        else arm();
      },
    },
    bufferedAmountLowThreshold: {
      configurable: true,
      get: () => threshold,
      set: (n: number) => {
        if (!(Number.isFinite(n) && n >= 0)) throw new RangeError(`bufferedAmountLowThreshold ${n}`);
        threshold = n;
      },
    },
    send: {
      configurable: true,
      value: (data: unknown) => {
        send(data);
        arm();
      },
    },
  });
  return channel;
}
