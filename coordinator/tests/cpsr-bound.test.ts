/**
 * `--cpsr-max-error` (the recovery option cpsrMaxErrorRatio) reaches the fitting worker: with a
 * bound no fit can meet, the background fit of the lost stage is refused with that bound as the
 * reason, and the stage is restored plainly, saying so.
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { startNodeVolunteer } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../../shared/run-settings.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';
import type { CpsrStrategy } from '../recovery/cpsr-strategy.js';

const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 2, recovery: 'cpsr' };
const harness = testSwarm();

describe('--cpsr-max-error', () => {
  it('a bound no fit meets: the fit is refused with that bound, the lost stage restored plainly', async () => {
    const c = (harness.coord = new Coordinator({
      ...DEFAULT_COORDINATOR,
      maxReplicas: 1,
      settings,
      port: 0,
      silent: true,
      evalEvery: 0,
      graceMs: 300,
      recovery: { ...DEFAULT_COORDINATOR.recovery, checkpointEvery: 2, cpsrMaxErrorRatio: 0.001, checkpointDir: mkdtempSync(join(tmpdir(), 'cpsr-bound-')) },
    }));
    const url = await c.listen();
    for (let i = 0; i < 5; i++) harness.vols.push(await startNodeVolunteer(url, { name: `t${i}` }));
    const stop = c.scheduler.observe((r) => {
      if (r.iteration === 14) c.scheduler.setPaused(true);
    });
    await until(() => c.scheduler.state === 'paused' && c.scheduler.iteration === 14, 'pause at 14', 240_000);
    stop();
    const fitter = (c.recovery.strategy as CpsrStrategy).fitter!;
    await fitter.idle();
    await fitter.fitInBackground([2], 7); // checkpoints at 1, 3, ..., 13
    const fit = fitter.fits.get(2)!.outcome;
    expect(fit.checkpoints).toBe(7);
    expect(fit.usable).toBe(false);
    expect(!fit.usable && fit.reason).toMatch(/validation error [\d.]+ of the plain restore's, above the bound 0\.001/);

    const old = c.stages.owner(2)!.id;
    harness.vols.find((v) => v.status().volunteerId === old)!.kill();
    await until(() => c.stages.owner(2) !== undefined && c.stages.owner(2)!.id !== old, 'stage 2 taken by the spare', 120_000);
    c.scheduler.setPaused(false);
    await until(() => c.recovery.done.some((e) => e.rung === 'strategy'), 'the recovery closed', 120_000);
    const ev = c.recovery.done.find((e) => e.rung === 'strategy')!;
    expect(ev).toMatchObject({ method: 'stage-restore', fallback: true });
    expect(ev.notes.some((n) => /^no prediction \(.*above the bound 0\.001\): the plain restore$/.test(n)), ev.notes.join('; ')).toBe(true);
  }, 400_000);
});
