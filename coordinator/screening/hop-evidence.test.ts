/** The audit's evidence (hop-evidence.ts): one record per flow, the largest frame, gone at the next pass. */
import { describe, it, expect } from 'vitest';
import type { TaskMeta } from '../../shared/protocol/events.js';
import type { Volunteer } from '../tabs/registry.js';
import { HopEvidence, type HopRecord } from './hop-evidence.js';

const a = { id: 'a' } as Volunteer;
const b = { id: 'b' } as Volunteer;
const rec = (sender: Volunteer, hop: number, norm: number, mb: number): HopRecord => ({
  sender,
  stage: 1,
  dir: 'act',
  hop,
  norm,
  forward: { mb } as TaskMeta,
  input: new Uint8Array(4),
  targets: null,
  gradIn: null,
  output: new Uint8Array(4),
});

describe('hop evidence', () => {
  it("keeps only each flow's largest frame, however many microbatches, and forgets it at the next pass", () => {
    const e = new HopEvidence();
    for (let mb = 0; mb < 16; mb++) {
      e.keep(rec(a, 1, mb === 5 ? 9 : 1, mb));
      e.keep(rec(b, 1, 2, mb));
      e.keep(rec(a, 3, 3, mb));
    }
    expect(e.size).toBe(3);
    expect(e.of(a, 1, 'act', 1)!.forward.mb).toBe(5);
    expect(e.of(b, 1, 'act', 1)!.forward.mb).toBe(0); // equal norms: the first stays
    expect(e.of(a, 1, 'grad', 1)).toBeUndefined();
    e.begin();
    expect(e.size).toBe(0);
    expect(e.of(a, 1, 'act', 1)).toBeUndefined();
  });
});
