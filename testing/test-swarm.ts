/**
 * A live coordinator and the Node volunteers one test started, closed after every test of the
 * file whether it passed or failed: `const swarm = testSwarm();` at the top of a test file, then
 * `swarm.coord = new Coordinator(...)` and `swarm.vols.push(await startNodeVolunteer(...))`.
 */
import { afterEach } from 'vitest';
import type { Coordinator } from '../coordinator/server.js';
import type { NodeVolunteer } from './node-volunteer.js';
import { startPoisonedVolunteer, type PoisonedVolunteer } from './poisoned-volunteer.js';

export class TestSwarm {
  coord: Coordinator | null = null;
  vols: NodeVolunteer[] = [];

  /** Honest tabs named `names` that a test can poison later, started one after another and closed with the swarm. */
  async poisonable(url: string, names: readonly string[]): Promise<PoisonedVolunteer[]> {
    const tabs: PoisonedVolunteer[] = [];
    for (const name of names) {
      const v = await startPoisonedVolunteer(url, null, { name });
      tabs.push(v);
      this.vols.push(v);
    }
    return tabs;
  }

  async close(): Promise<void> {
    for (const v of this.vols) v.kill();
    this.vols = [];
    await this.coord?.close();
    this.coord = null;
  }
}

/** A TestSwarm closed after each test of the calling file. */
export function testSwarm(): TestSwarm {
  const swarm = new TestSwarm();
  afterEach(() => swarm.close());
  return swarm;
}
