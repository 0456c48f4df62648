/** One audit round (hop-audit.ts) against a fake auditor: phases, verdicts, and what it sends. */
import { describe, it, expect } from 'vitest';
import { encodeTensorFrame } from '../../shared/protocol/index.js';
import type { OutMeta, TaskMeta } from '../../shared/protocol/events.js';
import type { Volunteer } from '../tabs/registry.js';
import { AuditPhase, HopAudit, relativeDifference } from './hop-audit.js';
import type { HopRecord } from './hop-evidence.js';

const shape = [1, 2, 4];
const frames = { shape, wire: 'f32' as const, maxBytes: 1 << 16 };
const values = Float32Array.from({ length: 8 }, (_, i) => (i - 3.5) / 4);
const frame = (kind: 'act' | 'grad', xs: Float32Array) => encodeTensorFrame({ kind, iteration: 7, microbatch: 1, hop: 2, fromStage: 1, toStage: -1, dtype: 'float32', shape }, xs);
const forward: TaskMeta = { attempt: 9, iteration: 7, mb: 1, dir: 'F', hop: 2, stage: 1, segment: { embed: false, blocks: true, head: false } } as TaskMeta;

function record(dir: 'act' | 'grad', sent: Float32Array): HopRecord {
  return { sender: { id: 'suspect' } as Volunteer, stage: 1, dir, hop: 2, norm: 1, forward, input: frame('act', values), targets: null, gradIn: dir === 'grad' ? frame('grad', values) : null, output: frame(dir, sent) };
}

function fakeAuditor(answer: (meta: TaskMeta) => Uint8Array | null | undefined) {
  const sent: TaskMeta[] = [];
  const auditor = { id: 'sibling' } as Volunteer;
  let audit: HopAudit | null = null;
  const sender = {
    send: (v: Volunteer, meta: TaskMeta) => {
      expect(v).toBe(auditor);
      sent.push(meta);
      const f = answer(meta);
      if (f === undefined) return; // silent
      const out = { attempt: meta.attempt, iteration: meta.iteration, mb: meta.mb, dir: meta.dir, hop: meta.hop, computeMs: 1 } as OutMeta;
      queueMicrotask(() => {
        expect(audit!.claims(auditor, out)).toBe(true);
        expect(audit!.claims({ id: 'other' } as Volunteer, out)).toBe(false);
        audit!.onOut(out, f);
      });
    },
  };
  return { sent, auditor, make: (r: HopRecord, timeoutMs = 1000) => (audit = new HopAudit(r, auditor, { sender, frames, timeoutMs })) };
}

describe('hop audit', () => {
  it('relative difference: 0 for equal vectors, ~1 for a 1e4 inflation, infinite for other lengths', () => {
    expect(relativeDifference(values, values)).toBe(0);
    expect(relativeDifference(values, values.map((x) => x * 1e4))).toBeCloseTo(1, 3);
    expect(relativeDifference([0, 0], [0, 0])).toBe(0);
    expect(relativeDifference([1], [1, 2])).toBe(Infinity);
  });

  it('an activation is re-run forward-only (E) on the sibling; the same output is a match', async () => {
    const f = fakeAuditor(() => frame('act', values));
    const a = f.make(record('act', values));
    const out = await a.run();
    expect(out).toMatchObject({ verdict: 'match', diff: 0 });
    expect(a.phase).toBe(AuditPhase.Done);
    expect(f.sent.map((m) => m.dir)).toEqual(['E']);
    expect(f.sent[0]).toMatchObject({ attempt: 9, mb: 1, hop: 2, stage: 1 });
  });

  it('a gradient is re-run forward (F) then backward (B); a 1e4x inflated frame from the suspect is a mismatch', async () => {
    const f = fakeAuditor((m) => (m.dir === 'F' ? frame('act', values) : frame('grad', values)));
    const out = await f.make(record('grad', values.map((x) => x * 1e4))).run();
    expect(f.sent.map((m) => m.dir)).toEqual(['F', 'B']);
    expect(out.verdict).toBe('mismatch');
    expect(out.diff!).toBeGreaterThan(0.99);
  });

  it('a silent sibling, or one whose frame fails the relay check, leaves it unverifiable', async () => {
    const silent = await fakeAuditor(() => undefined).make(record('act', values), 30).run();
    expect(silent).toMatchObject({ verdict: 'unverifiable', diff: null });
    expect(silent.why).toMatch(/did not answer within 30 ms/);
    // The encoder refuses NaN: poison the payload's first value after encoding.
    const bad = frame('act', values);
    new DataView(bad.buffer, bad.byteOffset).setFloat32(20 + 4 * shape.length, Number.NaN, true);
    const nan = await fakeAuditor(() => bad).make(record('act', values)).run();
    expect(nan.verdict).toBe('unverifiable');
    expect(nan.why).toMatch(/failed the relay check/);
  });
});
