/**
 * CPSR and the plain stage restore in a live swarm: a lost stage comes back alone from its own
 * last checkpoint (CPSR: moved forward by its predictor, or the plain restore with the reason),
 * while every other stage keeps its weights and the run keeps its iteration (no rollback); a
 * corrupt checkpoint file in the kept history is named and skipped, never crashes anything.
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { startNodeVolunteer, type NodeVolunteer } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, type RunSettings, type RecoveryStrategy } from '../../shared/run-settings.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';

const base: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 2 };
const harness = testSwarm();

async function swarm(recovery: RecoveryStrategy, checkpointEvery: number): Promise<Coordinator> {
  const coord = (harness.coord = new Coordinator({
    ...DEFAULT_COORDINATOR,
    maxReplicas: 1, // one tab per stage: the fifth is the spare that takes the lost stage
    settings: { ...base, recovery },
    port: 0,
    silent: true,
    evalEvery: 0,
    graceMs: 300,
    recovery: { ...DEFAULT_COORDINATOR.recovery, checkpointEvery, checkpointDir: mkdtempSync(join(tmpdir(), 'cpsr-')) },
  }));
  const url = await coord.listen();
  for (let i = 0; i < 5; i++) harness.vols.push(await startNodeVolunteer(url, { name: `t${i}` }));
  return coord;
}

const volunteerOf = (c: Coordinator, stage: number): NodeVolunteer => {
  const id = c.stages.owner(stage)!.id;
  return harness.vols.find((v) => v.status().volunteerId === id)!;
};

async function pauseAt(c: Coordinator, iteration: number): Promise<void> {
  const stop = c.scheduler.observe((r) => {
    if (r.iteration === iteration) c.scheduler.setPaused(true);
  });
  await until(() => c.scheduler.state === 'paused' && c.scheduler.iteration === iteration, `pause at iteration ${iteration}`);
  stop();
}

/** Every stage's weights but `except`, as flat copies. */
function otherWeights(c: Coordinator, except: number): Map<number, Float32Array[]> {
  const out = new Map<number, Float32Array[]>();
  for (let s = 0; s < 4; s++) if (s !== except) out.set(s, Object.values(volunteerOf(c, s).agent.currentStage!.getWeights()).map((w) => w.slice()));
  return out;
}

/** Kills stage 2's tab at a paused iteration; resolves with the recovery event once the spare holds the stage. */
async function loseStage2(c: Coordinator) {
  const old = c.stages.owner(2)!.id;
  volunteerOf(c, 2).kill();
  await until(() => c.stages.owner(2) !== undefined && c.stages.owner(2)!.id !== old, 'stage 2 taken by the spare', 120_000);
  await until(() => volunteerOf(c, 2).agent.currentStage?.index === 2, 'stage 2 built');
}

describe('stage restore and CPSR in the swarm', () => {
  it('stage-restore: only the lost stage goes back to its checkpoint (weights and Adam); no rollback', async () => {
    const c = await swarm('stage-restore', 2);
    await pauseAt(c, 6); // checkpoints at 1, 3, 5
    const before = otherWeights(c, 2);
    await loseStage2(c);
    expect(c.scheduler.iteration).toBe(6);
    const after = otherWeights(c, 2);
    for (const [s, ws] of before) ws.forEach((w, i) => expect(after.get(s)![i], `stage ${s} kept its weights`).toEqual(w));
    expect(volunteerOf(c, 2).agent.currentStage!.optimizerStep()).toBe(5); // Adam from the checkpoint at 5
    expect(volunteerOf(c, 1).agent.currentStage!.optimizerStep()).toBe(6);
    c.scheduler.setPaused(false);
    await until(() => c.scheduler.iteration >= 8, 'training goes on');
    const ev = c.recovery.done.find((e) => e.rung === 'strategy')!;
    expect(ev).toMatchObject({ stage: 2, method: 'stage-restore', fallback: false, iteration: 6 });
    expect(ev.notes[0]).toBe('restored checkpoint: iteration 5; horizon 1');
  });

  it('cpsr: the lost stage is restored and predicted forward (or restored plainly, with the reason); a corrupt history file is skipped', async () => {
    const c = await swarm('cpsr', 2);
    await pauseAt(c, 16); // checkpoints at 1, 3, ..., 15: eight kept
    const kept = c.recovery.checkpointsKept;
    expect(kept.map((k) => k.iteration)).toEqual([15, 13, 11, 9, 7, 5, 3, 1]);
    // A stranger's disk, or a torn write: an older checkpoint of stage 2 no longer matches its record.
    writeFileSync(join(kept.find((k) => k.iteration === 7)!.dir, 'stage-2.bin'), new Uint8Array([1, 2, 3]));
    const before = otherWeights(c, 2);
    await loseStage2(c);
    expect(c.scheduler.iteration).toBe(16);
    const after = otherWeights(c, 2);
    for (const [s, ws] of before) ws.forEach((w, i) => expect(after.get(s)![i], `stage ${s} kept its weights`).toEqual(w));
    expect(volunteerOf(c, 2).agent.currentStage!.optimizerStep()).toBe(15);
    c.scheduler.setPaused(false);
    await until(() => c.scheduler.iteration >= 18, 'training goes on');
    const ev = c.recovery.done.find((e) => e.rung === 'strategy')!;
    console.log(`cpsr rebuild: ${ev.method}${ev.fallback ? ' (fallback)' : ''}; ${ev.notes.join('; ')}`);
    expect(ev.stage).toBe(2);
    expect(ev.notes[0]).toBe('restored checkpoint: iteration 15; horizon 1');
    expect(ev.notes.some((n) => /^history: checkpoint 7: .*does not match its record/.test(n))).toBe(true);
    if (ev.method === 'cpsr') expect(ev.notes.some((n) => /^predicted 1 iteration\(s\) forward from the checkpoint at 15/.test(n))).toBe(true);
    else expect(ev).toMatchObject({ method: 'stage-restore', fallback: true }), expect(ev.notes.some((n) => /^no prediction \(.+\): the plain restore$/.test(n))).toBe(true);
  });
});
