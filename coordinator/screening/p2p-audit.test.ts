/** P2pAudit decides who lied about a peer-to-peer frame from the frame the receiver holds (docs/p2p.md#trust). */
import { describe, it, expect } from 'vitest';
import { P2pAudit } from './p2p-audit.js';
import { SwarmMetrics } from '../record/metrics.js';
import { encodeTensorFrame } from '../../shared/protocol/codec.js';
import { frameDigest } from '../../shared/transport/frame-digest.js';
import type { ExpectedHopFrame } from '../../shared/protocol/hop-frame-check.js';
import type { Volunteer } from '../tabs/registry.js';

const shape = [2, 4, 8];
const want: ExpectedHopFrame = { kind: 'act', iteration: 3, microbatch: 1, hop: 0, fromStage: 0, toStage: 1, shape, wire: 'f32' };
const tab = (id: string) => ({ id }) as Volunteer;

function frame(fill: number): Uint8Array {
  const data = new Float32Array(64).fill(fill);
  return encodeTensorFrame({ kind: 'act', iteration: 3, microbatch: 1, hop: 0, fromStage: 0, toStage: 1, dtype: 'float32', shape }, data);
}

/** Poisons every value of an f32 frame with NaN (the encoder refuses to write one). */
function nanFrame(): Uint8Array {
  const f = frame(1).slice();
  const view = new DataView(f.buffer);
  for (let o = f.byteLength - 64 * 4; o < f.byteLength; o += 4) view.setFloat32(o, Number.NaN, true);
  return f;
}

function setup(held: Uint8Array | Error, sampleRate = 0) {
  const offences: [string, string][] = [];
  const metrics = new SwarmMetrics();
  const audit = new P2pAudit({
    reject: (v, reason) => void offences.push([v.id, reason]),
    metrics,
    fetch: async () => {
      if (held instanceof Error) throw held;
      return held;
    },
    sampleRate,
    maxBytes: 1 << 20,
    random: () => 0.5,
  });
  const settle = async () => {
    while (audit.pending.size) await Promise.all([...audit.pending]);
  };
  return { audit, offences, metrics, settle };
}

describe('P2pAudit', () => {
  const S = tab('sender');
  const R = tab('receiver');

  it('agreeing digests: nothing fetched unless sampled; a sampled clean frame is no offence', async () => {
    const f = frame(1);
    const d = await frameDigest(f);
    const quiet = setup(f, 0);
    quiet.audit.onSent(S, want, d);
    quiet.audit.onGot(R, want, { from: 'sender', digest: d, norm: 1 });
    expect(quiet.audit.pending.size).toBe(0);
    const sampled = setup(f, 0.9);
    sampled.audit.onSent(S, want, d);
    sampled.audit.onGot(R, want, { from: 'sender', digest: d, norm: 1 });
    await sampled.settle();
    expect(sampled.offences).toEqual([]);
    expect(await sampled.metrics.text()).toMatch(/swarm_p2p_audits_total\{result="clean"\} 1/);
  });

  it('a sender whose report names another frame than its peer received is blamed', async () => {
    const f = frame(1);
    const { audit, offences, settle } = setup(f);
    audit.onSent(S, want, await frameDigest(frame(2)));
    audit.onGot(R, want, { from: 'sender', digest: await frameDigest(f), norm: 1 });
    await settle();
    expect(offences).toEqual([['sender', 'p2p_digest']]);
  });

  it('a non-finite frame the sender vouched for gets the sender quarantined (reason nonfinite)', async () => {
    const bad = nanFrame();
    const d = await frameDigest(bad);
    const { audit, offences, settle } = setup(bad);
    audit.onSent(S, want, d);
    audit.onRefused(R, want, { from: 'sender', reason: 'nonfinite', digest: d });
    await settle();
    expect(offences).toEqual([['sender', 'nonfinite']]);
  });

  it('a receiver refusing a valid frame, or unable to show the frame it reported, is blamed', async () => {
    const f = frame(1);
    const d = await frameDigest(f);
    const a = setup(f);
    a.audit.onSent(S, want, d);
    a.audit.onRefused(R, want, { from: 'sender', reason: 'nonfinite', digest: d });
    await a.settle();
    expect(a.offences).toEqual([['receiver', 'p2p_refused']]);
    const b = setup(new Error('no frame kept'));
    b.audit.onSent(S, want, d);
    b.audit.onGot(R, want, { from: 'sender', digest: await frameDigest(frame(3)), norm: 1 });
    await b.settle();
    expect(b.offences).toEqual([['receiver', 'p2p_audit']]);
    const c = setup(frame(4));
    c.audit.onSent(S, want, d);
    c.audit.onGot(R, want, { from: 'sender', digest: await frameDigest(frame(3)), norm: 1 });
    await c.settle();
    expect(c.offences).toEqual([['receiver', 'p2p_digest']]);
  });

  it('a frame refused as missing that the sender says was acknowledged: both ends get an offence', async () => {
    const { audit, offences } = setup(frame(1));
    audit.onSent(S, want, await frameDigest(frame(1)));
    audit.onRefused(R, want, { from: 'sender', reason: 'missing' });
    expect(offences).toEqual([
      ['sender', 'p2p_missing'],
      ['receiver', 'p2p_missing'],
    ]);
  });
});
