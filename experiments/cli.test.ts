import { describe, it, expect } from 'vitest';
import { parseExperimentArgs, DEFAULT_ITERATION_SECONDS } from './cli.js';
import { DEFAULT_SETTINGS, RECOVERY_STRATEGIES } from '../shared/run-settings.js';
import { EXPERIMENT_STRATEGIES } from './experiment.js';

describe('npm run experiment arguments', () => {
  it('has the documented defaults', () => {
    const o = parseExperimentArgs([])!;
    expect(o.rates).toEqual([0, 5, 10, 16, 33]);
    expect(o.strategies).toEqual([...EXPERIMENT_STRATEGIES]);
    expect(EXPERIMENT_STRATEGIES).toEqual(RECOVERY_STRATEGIES);
    expect(EXPERIMENT_STRATEGIES).toContain('cpsr');
    expect(EXPERIMENT_STRATEGIES).toContain('stage-restore');
    expect(parseExperimentArgs(['--strategies', 'checkpoint,stage-restore,cpsr'])!.strategies).toEqual(['checkpoint', 'stage-restore', 'cpsr']);
    expect(o.iterationSeconds).toBe(DEFAULT_ITERATION_SECONDS);
    expect(o.checkpointEvery).toBe('auto');
    expect(o.targetLoss).toBe('auto');
    expect(o.computeTime).toBe('median');
    expect(o.reuse).toBe(true);
    expect(o.network).toEqual({ upMbps: 100, downMbps: 100, latencyMs: 30 });
    expect(o.replacementWaitSeconds).toBe(10);
    expect(o.redundantCost).toBe('compute');
    expect(o.settings.preset).toBe(DEFAULT_SETTINGS.preset);
    expect(o.failureSeed).toBe(DEFAULT_SETTINGS.seed);
    expect(o.out).toMatch(/^results\/experiment-/);
  });

  it('reads the options of the issue', () => {
    const o = parseExperimentArgs([
      '--rates', '0,5,10,16,33', '--strategies', 'checkfree,checkfree+,checkpoint,redundant,none', '--iterations', '40', '--preset', 'small',
      '--checkpoint-every', '7', '--iteration-seconds', '300', '--no-reuse', '--seed', '9', '--target-loss', '2.5', '--compute-time', 'measured',
    ])!;
    expect(o.iterations).toBe(40);
    expect(o.settings.preset).toBe('small');
    expect(o.checkpointEvery).toBe(7);
    expect(o.iterationSeconds).toBe(300);
    expect(o.reuse).toBe(false);
    expect(o.failureSeed).toBe(9);
    expect(o.targetLoss).toBe(2.5);
    expect(o.computeTime).toBe('measured');
  });

  it('rejects what it cannot use', () => {
    expect(() => parseExperimentArgs(['--strategies', 'checkfree,magic'])).toThrow(/unknown strategy "magic"/);
    expect(() => parseExperimentArgs(['--rates', '5,x'])).toThrow(/--rates/);
    expect(() => parseExperimentArgs(['--iterations', 'many'])).toThrow(/--iterations must be a number/);
    expect(() => parseExperimentArgs(['--compute-time', 'fast'])).toThrow(/--compute-time/);
    expect(() => parseExperimentArgs(['--redundant-cost', 'free'])).toThrow(/--redundant-cost/);
    expect(parseExperimentArgs(['--redundant-cost', 'copy'])!.redundantCost).toBe('copy');
    expect(parseExperimentArgs(['--help'])).toBeNull();
  });
});
