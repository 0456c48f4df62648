/** Run settings: the data-parallel mode is part of what a resume must match, and is checked. */
import { describe, it, expect } from 'vitest';
import { DEFAULT_SETTINGS, checkSettings, dpOf, sameRunSettings, type RunSettings } from './run-settings.js';
import { DEFAULT_DP } from './dp/dp-settings.js';

const base: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4 };
const diloco = { ...DEFAULT_DP, mode: 'diloco' as const };

describe('run settings: --dp', () => {
  it('absent dp is exact (runs stored before --dp existed resume as exact)', () => {
    expect(dpOf(base)).toEqual(DEFAULT_DP);
    expect(sameRunSettings(base, { ...base, dp: DEFAULT_DP })).toBe(true);
  });

  it('a resume with another mode or another diloco setting is not the same run', () => {
    expect(sameRunSettings({ ...base, dp: diloco }, base)).toBe(false);
    expect(sameRunSettings({ ...base, dp: diloco }, { ...base, dp: { ...diloco, every: 10 } })).toBe(false);
    expect(sameRunSettings({ ...base, dp: diloco }, { ...base, dp: { ...diloco, outerLr: 0.5 } })).toBe(false);
    expect(sameRunSettings({ ...base, dp: diloco }, { ...base, dp: { ...diloco, wire: 'f16' } })).toBe(false);
    expect(sameRunSettings({ ...base, dp: diloco }, { ...base, dp: { ...diloco } })).toBe(true);
    // exact ignores the diloco knobs
    expect(sameRunSettings(base, { ...base, dp: { ...DEFAULT_DP, every: 7 } })).toBe(true);
    expect(sameRunSettings(base, { ...base, preset: 'small' })).toBe(false);
  });

  it('checks the dp settings', () => {
    expect(() => checkSettings({ ...base, dp: { ...diloco, every: 0 } })).toThrow(/--dp-every/);
    expect(() => checkSettings({ ...base, dp: { ...diloco, outerMomentum: 1 } })).toThrow(/--outer-momentum/);
    expect(() => checkSettings({ ...base, dp: { ...diloco, mode: 'gossip' as 'exact' } })).toThrow(/unknown --dp mode/);
    expect(() => checkSettings({ ...base, dp: diloco })).not.toThrow();
  });
});
