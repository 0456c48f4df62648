/** Pulling weights from tabs: the next replica is asked when one fails; silent and lying tabs are punished. */
import { describe, it, expect } from 'vitest';
import { EventEmitter } from 'node:events';
import { StagePuller } from './stage-puller.js';
import { BundleError } from './bundle-check.js';
import { BundleTransfer } from './bundle-transfer.js';
import type { Volunteer } from './registry.js';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { startNodeVolunteer, type NodeVolunteer } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS } from '../../shared/run-settings.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';

/** A tab whose socket answers get_weights with `reply`, chunk by chunk (undefined: never answers). */
function fakeTab(id: string, reply: Uint8Array | { error: string } | undefined): Volunteer {
  const socket = Object.assign(new EventEmitter(), {
    connected: true,
    emit(event: string, ...args: unknown[]) {
      if (event === 'disconnect') return EventEmitter.prototype.emit.call(socket, event);
      const { offset, maxBytes } = args[0] as { offset: number; maxBytes: number };
      const ack = args.at(-1) as (r: unknown) => void;
      const chunk = reply instanceof Uint8Array ? { total: reply.byteLength, offset, bytes: reply.slice(offset, offset + maxBytes) } : reply;
      if (chunk !== undefined) setTimeout(() => ack(chunk), 1);
      return true;
    },
  });
  return { id, socket } as unknown as Volunteer;
}

/** Chunks of 3 bytes: every bundle here takes several. */
const transfer = new BundleTransfer(3, 1000);

describe('StagePuller', () => {
  it('asks the next replica when one is silent or sends a bad bundle, and punishes each', async () => {
    const silent = fakeTab('silent', undefined);
    const liar = fakeTab('liar', new Uint8Array([9, 9, 9]));
    const refuser = fakeTab('refuser', { error: 'no replica here' });
    const honest = fakeTab('honest', new Uint8Array([1, 2, 3, 4, 5, 6, 7]));
    const rejected: string[] = [];
    const dropped: string[] = [];
    const puller = new StagePuller({
      transfer,
      timeoutMs: { weights: 50, state: 50 },
      replicas: () => [silent, liar, refuser, honest],
      reject: (v, reason) => rejected.push(`${v.id}:${reason}`),
      unresponsive: (v) => dropped.push(v.id),
    });
    const got = await puller.pull(2, 'all', (raw) => {
      if (raw.length !== 7) throw new BundleError('wrong size');
      return raw;
    });
    expect(got.from.id).toBe('honest');
    expect([...got.value]).toEqual([1, 2, 3, 4, 5, 6, 7]); // three chunks, put together
    expect(got.bytes).toBe(7);
    expect(dropped).toEqual(['silent']);
    expect(rejected).toEqual(['liar:bad_bundle']); // the refuser is not punished: it has nothing to give
  });

  it('fails with every reason when no replica delivers', async () => {
    const puller = new StagePuller({ transfer, timeoutMs: { weights: 20, state: 20 }, replicas: () => [fakeTab('a', undefined), fakeTab('b', { error: 'nope' })], reject: () => {}, unresponsive: () => {} });
    await expect(puller.pull(0, 'all', (r) => r)).rejects.toThrow(/a did not answer.*b refused get_weights: nope/);
  });
});

describe('a tab that never answers a weight request', () => {
  const swarm = testSwarm();

  it('is dropped with an offence; the stage that needed it is still recovered and training goes on', async () => {
    swarm.coord = new Coordinator({
      ...DEFAULT_COORDINATOR,
      maxReplicas: 1,
      settings: { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 2, recovery: 'checkfree' },
      port: 0,
      silent: true,
      evalEvery: 0,
      graceMs: 200,
      pullTimeoutMs: { weights: 1500, state: 1500 },
    });
    const url = await swarm.coord.listen();
    for (let s = 0; s < 4; s++) {
      const v = await startNodeVolunteer(url, { name: `h${s}` });
      swarm.vols.push(v);
      await until(() => swarm.coord!.stages.owner(s)?.caps.agent.includes(`h${s}`) === true, `h${s} on stage ${s}`);
    }
    // Stage 1's tab computes honestly but ignores every weight request.
    swarm.vols[1]!.socket.off('get_weights');
    const silentId = swarm.coord.stages.owner(1)!.id;
    for (const n of ['spare1', 'spare2']) swarm.vols.push(await startNodeVolunteer(url, { name: n }));
    await until(() => swarm.coord!.scheduler.iteration >= 2, 'training');
    swarm.vols[2]!.kill(); // stage 2 is rebuilt from stages 1 and 3: stage 1 stays silent
    await until(() => swarm.coord!.events.list('leave').some((e) => e.message.startsWith(`${silentId} left (unresponsive: no answer to a weight request (all)`)), 'the silent tab dropped', 30_000);
    expect(await swarm.coord.metrics.text()).toMatch(/swarm_rejected_messages_total\{reason="silent"\} [1-9]/);
    const at = swarm.coord.scheduler.iteration;
    await until(() => swarm.coord!.scheduler.iteration >= at + 2, 'training after both stages came back', 60_000);
    const rebuilt = swarm.coord.recovery.done.filter((r) => r.rung === 'strategy').map((r) => r.stage).sort();
    expect(rebuilt).toEqual([1, 2]);
    // Stage 2 came back from the seed (its neighbour stayed silent); stage 1, lost right after,
    // is not averaged with those random weights but copied from its trained neighbour, stage 0.
    const byStage = (s: number) => swarm.coord!.recovery.done.find((r) => r.rung === 'strategy' && r.stage === s)!;
    expect(byStage(2)).toMatchObject({ method: 'reinit', fallback: true });
    expect(byStage(1)).toMatchObject({ method: 'copy', fallback: false });
    expect(byStage(1).sources.map((x) => x.stage)).toEqual([0]);
    expect(swarm.coord.stages.owner(1)!.caps.agent).toContain('spare');
    expect(swarm.coord.stages.owner(2)!.caps.agent).toContain('spare');
  });
});
