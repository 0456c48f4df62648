import { describe, it, expect } from 'vitest';
import { PeerHandoffs } from './peer-handoffs.js';
import type { Volunteer } from '../tabs/registry.js';

const tab = (id: string) => ({ id }) as Volunteer;

describe('PeerHandoffs', () => {
  const a = tab('a');
  const b = tab('b');

  it('relays a reported frame whose receiver has not answered, once', () => {
    const h = new PeerHandoffs();
    h.reported('act', 0, 1, a, b, 4096);
    const r = h.fellBack(a, 'act', 0, 1);
    expect(r).toEqual({ relay: { sender: a, receiver: b, bytes: 4096, relayed: true, answered: false } });
    expect(h.fellBack(a, 'act', 0, 1)).toEqual({ error: expect.stringMatching(/fell back twice/) });
    // The receiver's got then says the frame came through the relay (its norm was measured here).
    expect(h.answered('act', 0, 1)?.relayed).toBe(true);
  });

  it('does not relay a frame the receiver took already (the link broke after delivering it)', () => {
    const h = new PeerHandoffs();
    h.reported('grad', 1, 2, a, b, 4096);
    expect(h.answered('grad', 1, 2)).toMatchObject({ sender: a, receiver: b, relayed: false, answered: true });
    expect(h.fellBack(a, 'grad', 1, 2)).toEqual({ relay: null });
  });

  it('refuses a fallback nobody reported, or from a tab other than the sender', () => {
    const h = new PeerHandoffs();
    expect(h.fellBack(a, 'act', 0, 1)).toEqual({ error: expect.stringMatching(/no act frame of mb 0 hop 1/) });
    h.reported('act', 0, 1, a, b, 4096);
    expect(h.fellBack(b, 'act', 0, 1)).toEqual({ error: expect.stringMatching(/another tab/) });
    expect(h.fellBack(a, 'grad', 0, 1)).toEqual({ error: expect.stringMatching(/no grad frame/) });
    expect(h.answered('act', 0, 2)).toBeUndefined();
  });
});
