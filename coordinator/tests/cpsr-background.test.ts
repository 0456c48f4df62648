/**
 * CPSR's background work in a live swarm: with `--checkpoint-every cpsr` the checkpoints follow
 * the planner's interval, which is re-planned (and logged with its inputs) as the loss curve,
 * the checkpoint cost and the worker thread's predictor fits come in; a lost stage is predicted
 * with the worker's latest fit at once; with the worker gone it is restored plainly with the
 * reason, and the coordinator trains on.
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { startNodeVolunteer, type NodeVolunteer } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../../shared/run-settings.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';
import { CpsrStrategy } from '../recovery/cpsr-strategy.js';

const base: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 2, recovery: 'cpsr' };
const harness = testSwarm();

async function swarm(checkpointEvery: number | 'cpsr', expectedFailureRate = 0.1): Promise<Coordinator> {
  const coord = (harness.coord = new Coordinator({
    ...DEFAULT_COORDINATOR,
    maxReplicas: 1,
    settings: base,
    port: 0,
    silent: true,
    evalEvery: 0,
    graceMs: 300,
    recovery: { ...DEFAULT_COORDINATOR.recovery, checkpointEvery, expectedFailureRate, checkpointDir: mkdtempSync(join(tmpdir(), 'cpsr-bg-')) },
  }));
  const url = await coord.listen();
  for (let i = 0; i < 5; i++) harness.vols.push(await startNodeVolunteer(url, { name: `t${i}` }));
  return coord;
}

const strategyOf = (c: Coordinator) => c.recovery.strategy as CpsrStrategy;
const volunteerOf = (c: Coordinator, stage: number): NodeVolunteer => harness.vols.find((v) => v.status().volunteerId === c.stages.owner(stage)!.id)!;

async function pauseAt(c: Coordinator, iteration: number): Promise<void> {
  const stop = c.scheduler.observe((r) => {
    if (r.iteration === iteration) c.scheduler.setPaused(true);
  });
  await until(() => c.scheduler.state === 'paused' && c.scheduler.iteration === iteration, `pause at iteration ${iteration}`, 240_000);
  stop();
}

async function loseStage2(c: Coordinator) {
  const old = c.stages.owner(2)!.id;
  volunteerOf(c, 2).kill();
  await until(() => c.stages.owner(2) !== undefined && c.stages.owner(2)!.id !== old, 'stage 2 taken by the spare', 120_000);
  await until(() => volunteerOf(c, 2).agent.currentStage?.index === 2, 'stage 2 built');
}

describe('CPSR background fitting and planning in the swarm', () => {
  it('--checkpoint-every cpsr: checkpoints follow the planned interval, re-planned as the fits come in', async () => {
    // A high prior failure rate keeps Young/Daly's first intervals to a few iterations here.
    const c = await swarm('cpsr', 40);
    const s = strategyOf(c);
    // Run until 9 checkpoints exist (how many iterations that takes depends on the plan, and the
    // plan on the measured checkpoint cost against the iteration time, which the machine's load moves).
    const stop = c.scheduler.observe(() => {
      if (c.recovery.checkpointsKept.length >= 9) c.scheduler.setPaused(true);
    });
    await until(() => c.scheduler.state === 'paused', 'pause after 9 checkpoints', 300_000);
    stop();
    await s.fitter!.idle();
    const kept = c.recovery.checkpointsKept.map((k) => k.iteration).reverse();
    const replans = c.events.list('run').filter((e) => e.message.startsWith('cpsr planner: '));
    for (const e of replans) expect(e.message).toMatch(/alpha_1 .* tau_1 .* T_s .* lambda .*xi 1, N_p \d+/);
    expect(replans.length, replans.map((e) => e.message).join('\n')).toBeGreaterThanOrEqual(2);
    // Each gap between kept checkpoints lies within the intervals the planner gave (a gap during
    // which the plan shrank ends as soon as the shorter interval has passed).
    const intervals = replans.map((e) => (e.data as { plan: { interval: number } }).plan.interval);
    expect(kept.length).toBeGreaterThanOrEqual(7);
    for (let i = 1; i < kept.length; i++) {
      const gap = kept[i]! - kept[i - 1]!;
      expect(gap, `gap ${kept[i - 1]} -> ${kept[i]} within the planned ${intervals.join(', ')}`).toBeGreaterThanOrEqual(Math.min(...intervals));
      expect(gap).toBeLessThanOrEqual(Math.max(...intervals));
    }
    // The worker's fits reached the planner (the error curve needs two after different checkpoint counts).
    const plan = s.currentPlan!;
    expect(plan.inputs.fitPoints).toBeGreaterThanOrEqual(2);
    expect(plan.inputs.tsMeasured).toBe(true);
    expect(plan.inputs.lossCurve).toBe('training');
    expect(plan.source === 'cpsr' ? plan.cpsr : plan.reason).toBeTruthy();
    const status = c.recovery.cpsrStatus!;
    expect(status.plan!.interval).toBe(plan.interval);
    expect(status.fits.length).toBe(4);
    expect(status.worker!.peakBytes).toBeGreaterThan(0);
    expect(status.worker!.peakBytes).toBeLessThan(200 * 1024 * 1024);
    console.log(`cpsr planner: ${replans.length} plans; kept ${kept.join(', ')}; last: ${replans.at(-1)!.message}; worker peak ${(status.worker!.peakBytes / 2 ** 20).toFixed(1)} MiB, ${status.worker!.fitSeconds.toFixed(1)} s fitting`);
  }, 400_000);

  it('a failure predicts with the background fit at once; with the worker gone, the plain restore and why', async () => {
    const c = await swarm(2);
    const s = strategyOf(c);
    await pauseAt(c, 16); // checkpoints at 1, 3, ..., 15
    await s.fitter!.idle();
    const fit = s.fitter!.fits.get(2)!;
    expect(fit.outcome.checkpoints).toBeGreaterThanOrEqual(7); // round robin: stage 2 was refitted at checkpoint 13 or 15
    await loseStage2(c);
    c.scheduler.setPaused(false);
    await until(() => c.scheduler.iteration >= 18, 'training goes on');
    const first = c.recovery.done.find((e) => e.rung === 'strategy')!;
    console.log(`background fit of stage 2: ${JSON.stringify({ ...fit.outcome })}; recovery: ${first.notes.join('; ')}`);
    if (fit.outcome.usable) {
      expect(first.method).toBe('cpsr');
      expect(first.notes.some((n) => /^predicted 1 iteration\(s\) forward from the checkpoint at 15 with the background fit/.test(n))).toBe(true);
    } else expect(first.notes.some((n) => n.includes(fit.outcome.usable ? '' : (fit.outcome as { reason: string }).reason))).toBe(true);
    expect(c.recovery.cpsrStatus!.lastRestore).toMatchObject({ stage: 2, iteration: 16, checkpoint: 15, horizon: 1 });
    harness.vols.push(await startNodeVolunteer(c.url, { name: 't5' })); // the next spare

    // The worker is gone: the next loss is a plain restore that says why; training goes on.
    await s.fitter!.close();
    c.scheduler.setPaused(true);
    await until(() => c.scheduler.state === 'paused', 'paused again');
    const at = c.scheduler.iteration;
    await loseStage2(c);
    c.scheduler.setPaused(false);
    await until(() => c.scheduler.iteration >= at + 2, 'training goes on after the plain restore');
    const second = c.recovery.done.filter((e) => e.rung === 'strategy')[1]!;
    expect(second).toMatchObject({ method: 'stage-restore', fallback: true });
    expect(second.notes).toContain('no prediction (the fitting worker is closed): the plain restore');
  }, 400_000);
});
