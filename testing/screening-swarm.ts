/**
 * The two-stage swarm of poisonable Node volunteers that the screening tests share (tiny model,
 * 2 stages, 2 microbatches of batch 2, `checkfree`): started on a test harness, returned once it
 * has trained a norm history and every tab that can serve does.
 */
import { Coordinator, DEFAULT_COORDINATOR } from '../coordinator/server.js';
import { DEFAULT_SETTINGS } from '../shared/run-settings.js';
import { DEFAULT_DP } from '../shared/dp/dp-settings.js';
import type { PoisonedVolunteer } from './poisoned-volunteer.js';
import type { TestSwarm } from './test-swarm.js';
import { until } from './until.js';

export interface ScreeningSwarmOptions {
  /** Replicas per stage: 2 with 4 tabs gives each stage a sibling; 1 leaves every stage alone (more tabs are spares). */
  maxReplicas: number;
  /** Iterations trained before the swarm is handed over (the norm history). */
  history?: number;
  /** `--dp diloco`, syncing every 4 iterations. */
  diloco?: boolean;
}

/** Starts the coordinator on `harness` and one poisonable tab per name; resolves when they train. */
export async function startScreeningSwarm(harness: TestSwarm, names: string[], opts: ScreeningSwarmOptions): Promise<PoisonedVolunteer[]> {
  const { maxReplicas, history = 8, diloco = false } = opts;
  const coord = new Coordinator({
    ...DEFAULT_COORDINATOR,
    maxReplicas,
    settings: { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 2, microbatches: 2, batch: 2, recovery: 'checkfree', ...(diloco ? { dp: { ...DEFAULT_DP, mode: 'diloco' as const, every: 4 } } : {}) },
    port: 0,
    silent: true,
    evalEvery: 0,
    graceMs: 200,
  });
  harness.coord = coord;
  const url = await coord.listen();
  const tabs = await harness.poisonable(url, names);
  const serve = Math.min(names.length, 2 * maxReplicas);
  await until(() => coord.scheduler.iteration >= history && coord.stages.allReplicas().length === serve && [0, 1].every((s) => coord.stages.size(s) >= 1), 'a norm history');
  return tabs;
}

/** The tabs that serve `stage` now, in the stage's replica order. */
export function tabsServing(coord: Coordinator, tabs: PoisonedVolunteer[], stage: number): PoisonedVolunteer[] {
  const ids = coord.stages.replicas(stage).map((v) => v.id);
  return tabs.filter((t) => ids.includes(t.status().volunteerId!));
}
