/** Baselines that know the schedule (issue 22, item 3): histories per hop, thresholds from the spread. */
import { describe, it, expect } from 'vitest';
import { RelayNorms, jumpThreshold } from './relay-norms.js';
import type { Volunteer } from '../tabs/registry.js';
import { median } from '../tabs/tab-speed.js';

const tab = (id: string) => ({ id }) as Volunteer;

describe('relay-norm baselines that know the schedule', () => {
  it('the threshold is the factor for a calm history and exp(k x 1.4826 x MAD) of log norms for a spread one', () => {
    expect(jumpThreshold([1, 1, 1, 1, 1], 50)).toBe(50);
    expect(jumpThreshold([], 50)).toBe(50);
    // Log norms spread by ln(10) around their median: MAD = ln 10.
    const spread = [0.01, 0.1, 1, 10, 100];
    expect(jumpThreshold(spread, 50, 5)).toBeCloseTo(Math.exp(5 * 1.4826 * Math.log(10)), 6);
    expect(jumpThreshold([0.01, 0.01, 0.01, Number.NaN, 0, -1], 50)).toBe(50);
  });

  it("a swapped microbatch's frames (another hop) have their own history: their different norms are no jump", () => {
    const r = new RelayNorms(50, 20, 3);
    const b = tab('b');
    const c = tab('c');
    // b (stage 1) sends activations to stage 0 at hop 1 (plain path, ~0.02) and at hop 2 (swapped, ~2).
    for (let i = 0; i < 5; i++) {
      r.begin();
      r.record(c, 2, 'act', 1, 0.01, 2);
      r.record(b, 1, 'act', 0, 0.02, 1);
      r.commit();
    }
    r.begin();
    r.record(c, 2, 'act', 1, 0.01, 2);
    r.record(b, 1, 'act', 0, 0.02, 1);
    r.record(b, 1, 'act', 0, 2, 2);
    expect(r.screen()).toBeNull();
    // Keyed by stage and direction only (the old baseline), that frame was a 100x jump of b.
    const old = new RelayNorms(50, 20, 3);
    for (let i = 0; i < 5; i++) {
      old.begin();
      old.record(c, 2, 'act', 1, 0.01);
      old.record(b, 1, 'act', 0, 0.02);
      old.commit();
    }
    old.begin();
    old.record(c, 2, 'act', 1, 0.01);
    old.record(b, 1, 'act', 0, 2);
    expect(old.screen()).toMatchObject({ sender: b });
    // The same hop inflated 1e4x is still a jump.
    r.begin();
    r.record(c, 2, 'act', 1, 0.01, 2);
    r.record(b, 1, 'act', 0, 200, 1);
    expect(r.screen()).toMatchObject({ sender: b, dir: 'act' });
  });

  it('a history that honestly spreads over orders of magnitude needs a larger jump; an inflation by 1e4 still is one', () => {
    const r = new RelayNorms(50, 20, 3);
    const a = tab('a');
    const b = tab('b');
    const noisy = [0.02, 0.1, 0.03, 0.2, 0.05, 0.15, 0.04, 0.1];
    for (const x of noisy) {
      r.begin();
      r.record(a, 0, 'act', 1, 10);
      r.record(b, 1, 'act', 0, x);
      r.commit();
    }
    const thr = jumpThreshold(r.history(b, 1, 'act'), 50);
    expect(thr).toBeGreaterThan(100);
    const med = median(noisy)!;
    r.begin();
    r.record(a, 0, 'act', 1, 10);
    r.record(b, 1, 'act', 0, med * 96); // 96x: over the fixed factor, under this spread's threshold
    expect(r.screen()).toBeNull();
    r.begin();
    r.record(a, 0, 'act', 1, 10);
    r.record(b, 1, 'act', 0, med * 1e4);
    expect(r.screen()).toMatchObject({ sender: b });
  });

  it('relayed gradients need the square of the threshold without a gradient outlier, the threshold with one', () => {
    const r = new RelayNorms(50, 20, 3);
    const a = tab('a');
    const b = tab('b');
    const step = (g: number) => {
      r.begin();
      r.record(a, 0, 'act', 1, 10);
      r.record(b, 1, 'grad', 0, g);
    };
    for (let i = 0; i < 5; i++) {
      step(0.02);
      r.commit();
    }
    step(0.02 * 95); // issue 22's honest jump: no conviction by the jump rule alone ...
    expect(r.screen()).toBeNull();
    expect(r.blame(0)).toMatchObject({ sender: b }); // ... but it is followed when stage 0's norm is an outlier
    step(0.02 * 1e4); // the inflate-sent-grads mode
    expect(r.screen()).toMatchObject({ sender: b, dir: 'grad' });
  });
});
