import { describe, expect, it } from 'vitest';
import { OK, asError, asNotOk, reply } from './reply';

describe('reply', () => {
  it('acknowledges synchronous work before returning', () => {
    const acks: unknown[] = [];
    void reply((r) => acks.push(r), () => OK, asNotOk);
    expect(acks).toEqual([{ ok: true }]);
  });

  it('acknowledges a synchronous throw with the failure reply, before returning', () => {
    const acks: unknown[] = [];
    void reply(
      (r) => acks.push(r),
      () => {
        throw new Error('bad bundle');
      },
      asNotOk,
    );
    expect(acks).toEqual([{ ok: false, error: 'bad bundle' }]);
  });

  it('acknowledges what async work resolves to, once, and settles after the ack', async () => {
    const acks: unknown[] = [];
    const done = reply((r) => acks.push(r), async () => ({ iteration: 3, preClipNorm: 1.5 }), asError);
    expect(acks).toEqual([]);
    await done;
    expect(acks).toEqual([{ iteration: 3, preClipNorm: 1.5 }]);
  });

  it('acknowledges a rejection with the failure reply and does not reject itself', async () => {
    const acks: unknown[] = [];
    await expect(reply((r) => acks.push(r), () => Promise.reject(new Error('no stage assigned')), asError)).resolves.toBeUndefined();
    expect(acks).toEqual([{ error: 'no stage assigned' }]);
  });

  it('words a thrown non-Error as a string', async () => {
    const acks: unknown[] = [];
    await reply((r) => acks.push(r), () => Promise.reject('gone'), asError);
    expect(acks).toEqual([{ error: 'gone' }]);
  });
});
