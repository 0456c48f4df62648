/** Signalling schemas: what the coordinator forwards between tabs, and what each tab accepts. */
import { describe, it, expect } from 'vitest';
import { incomingSignalSchema, outgoingSignalSchema, parseSignal, MAX_SDP_CHARS } from './signal.js';

const sdp = 'v=0\r\no=rtc 1 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n';

describe('signal schemas', () => {
  it('accept the signals a link exchanges (browser and libdatachannel forms)', () => {
    for (const s of [
      { type: 'connect', link: 'AbC_-123' },
      { type: 'offer', link: 'AbC_-123', sdp },
      { type: 'answer', link: 'AbC_-123', sdp: sdp + 'a=x'.repeat(100) },
      { type: 'candidate', link: 'AbC_-123', candidate: 'candidate:1 1 UDP 2114977791 127.0.0.1 58419 typ host', sdpMid: '0', sdpMLineIndex: null },
      { type: 'candidate', link: 'AbC_-123', candidate: '', sdpMid: null, sdpMLineIndex: 0 },
      { type: 'bye', link: 'AbC_-123' },
    ]) expect(parseSignal(s)).toEqual({ ok: true, signal: s });
  });

  it('reject oversized, malformed or smuggled fields with a message naming the field', () => {
    const r = parseSignal({ type: 'offer', link: 'AbC_-123', sdp: 'v=0' + 'x'.repeat(MAX_SDP_CHARS) });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.message).toMatch(/sdp/);
    expect(parseSignal({ type: 'offer', link: 'AbC_-123', sdp: sdp + '\u0000' }).ok).toBe(false);
    expect(parseSignal({ type: 'bye', link: 'has space' }).ok).toBe(false);
    expect(parseSignal({ type: 'candidate', link: 'AbC_-123', candidate: 'x'.repeat(2000), sdpMid: '0', sdpMLineIndex: 0 }).ok).toBe(false);
    expect(parseSignal({ type: 'connect', link: 'AbC_-123', sdp }).ok).toBe(false);
  });

  it('envelopes: a tab names the recipient, the coordinator names the sender; ids are checked', () => {
    const signal = { type: 'bye', link: 'AbC_-123' };
    expect(outgoingSignalSchema.safeParse({ to: 'tab_7', signal }).success).toBe(true);
    expect(outgoingSignalSchema.safeParse({ to: 'tab_7', from: 'x', signal }).success).toBe(false);
    expect(outgoingSignalSchema.safeParse({ to: '../admin', signal }).success).toBe(false);
    expect(incomingSignalSchema.safeParse({ from: 'tab_7', signal }).success).toBe(true);
    expect(incomingSignalSchema.safeParse({ from: 'x'.repeat(65), signal }).success).toBe(false);
  });
});
