/**
 * Screening.judge across the retries of one iteration: a stage's gradient outlier whose upstream
 * flow was audited and found honest in an earlier attempt (so it is excused now) is explained, not
 * the stage's own. Before, the retry blamed the stage's own gradient and quarantined an honest tab
 * (bench:screening small-b1: stage 0, "gradient norm 1.04e+2 is 307x its recent median", iteration 875).
 */
import { describe, it, expect } from 'vitest';
import { Screening } from './screening.js';
import type { Volunteer } from '../tabs/registry.js';
import type { Excused } from './relay-norms.js';

const tab = (id: string) => ({ id }) as Volunteer;

/** Two stages: b (stage 1) relays gradients into stage 0 (a); 8 calm iterations of history. */
function calm(): { s: Screening; a: Volunteer; b: Volunteer } {
  const s = new Screening(2, 50);
  const a = tab('a');
  const b = tab('b');
  for (let i = 0; i < 8; i++) {
    s.beginIteration();
    s.recordFrame(a, 0, 'act', 1, 1, 0);
    s.recordFrame(b, 1, 'grad', 0, 0.02, 1);
    s.accept([0.3, 0.3]);
  }
  return { s, a, b };
}

describe('a stage gradient outlier across the retries of an iteration', () => {
  const none: Excused = () => false;

  it('blamed upstream while the jumped flow into it is not excused; explained once it is', () => {
    const { s, a, b } = calm();
    s.beginIteration();
    s.recordFrame(a, 0, 'act', 1, 1, 0);
    s.recordFrame(b, 1, 'grad', 0, 7, 1); // 350x its history
    const norms = [104, 0.3];
    expect(s.judge(norms, () => a, none)).toMatchObject({ rule: 'upstream', culprit: b, stage: 1 });
    // The retry, with that flow audited honest (or accepted) earlier in this iteration.
    const excused: Excused = (sender, stage, dir) => sender === b && stage === 1 && dir === 'grad';
    expect(s.judge(norms, () => a, excused)).toBeNull();
  });

  it("with no jumped flow into it the outlier is the stage's own, excused flows or not", () => {
    const { s, a, b } = calm();
    s.beginIteration();
    s.recordFrame(a, 0, 'act', 1, 1, 0);
    s.recordFrame(b, 1, 'grad', 0, 0.02, 1);
    const norms = [104, 0.3];
    expect(s.judge(norms, () => a, none)).toMatchObject({ rule: null, culprit: a, stage: 0 });
    const excused: Excused = (sender) => sender === b;
    expect(s.judge(norms, () => a, excused)).toMatchObject({ rule: null, culprit: a, stage: 0 });
  });
});
