/** ReplicaSync against fake tabs: the majority state wins, a drifted replica is reloaded, garbage and silence are punished. */
import { describe, it, expect } from 'vitest';
import { EventEmitter } from 'node:events';
import { ReplicaSync } from './replica-sync.js';
import type { Volunteer } from '../tabs/registry.js';
import type { StagePuller } from '../tabs/stage-puller.js';
import { SwarmMetrics } from '../record/metrics.js';
import { EventLog } from '../record/events-log.js';
import { createLogger } from '../record/log.js';
import { modelConfigOf, DEFAULT_SETTINGS } from '../../shared/run-settings.js';

/** A tab answering weights_digest with `reply` (undefined: never). */
function tab(id: string, reply: unknown): Volunteer {
  const socket = Object.assign(new EventEmitter(), {
    connected: true,
    emit(_event: string, ...args: unknown[]) {
      const ack = args.at(-1) as (r: unknown) => void;
      if (reply !== undefined) setTimeout(() => ack(reply), 1);
      return true;
    },
  });
  return { id, socket, caps: { backend: 'wasm' } } as unknown as Volunteer;
}

function setup(group: Volunteer[], timeoutMs?: number) {
  const log = createLogger({ silent: true });
  const seen = { rejected: [] as string[], dropped: [] as string[], reloaded: [] as string[], pulledFrom: [] as string[] };
  const state = new Uint8Array([1, 2, 3]);
  const puller = {
    pullFrom: async (tabs: readonly Volunteer[]) => {
      seen.pulledFrom.push(...tabs.map((v) => v.id));
      return { value: state, bytes: state.byteLength, from: tabs[0]! };
    },
  } as unknown as StagePuller;
  const sync = new ReplicaSync(1, {
    config: modelConfigOf(DEFAULT_SETTINGS),
    nStages: 1,
    replicas: () => group,
    timeoutMs,
    puller,
    reload: async (v) => void seen.reloaded.push(v.id),
    unresponsive: (v) => void seen.dropped.push(v.id),
    reject: (v, reason) => void seen.rejected.push(`${v.id}:${reason}`),
    announceGroup: () => {},
    metrics: new SwarmMetrics(),
    events: new EventLog(log),
    log,
  });
  return { sync, seen };
}

const A = { digest: 'aaaaaaaaaaaaaaaa', step: 3 };
const B = { digest: 'bbbbbbbbbbbbbbbb', step: 3 };

describe('ReplicaSync', () => {
  it('reloads the replica whose state differs from the one most replicas share, from one that has it', async () => {
    const { sync, seen } = setup([tab('first', B), tab('second', A), tab('third', A)]);
    expect(await sync.syncStage(0, 10)).toBe(1);
    expect(seen.pulledFrom).toEqual(['second', 'third']);
    expect(seen.reloaded).toEqual(['first']);
  });

  it('a different Adam step count is drift too; a tie goes to the earliest replica', async () => {
    const { sync, seen } = setup([tab('first', A), tab('second', { ...A, step: 4 })]);
    expect(await sync.syncStage(0, 10)).toBe(1);
    expect(seen.pulledFrom).toEqual(['first']);
    expect(seen.reloaded).toEqual(['second']);
  });

  it('a garbage answer is an offence and the tab is not compared; agreeing replicas are left alone', async () => {
    const { sync, seen } = setup([tab('a', A), tab('b', A), tab('liar', { digest: 'not hex', step: -1 })]);
    expect(await sync.syncStage(0, 10)).toBe(0);
    expect(seen.rejected).toEqual(['liar:schema']);
    expect(seen.reloaded).toEqual([]);
  });

  it('a tab that never answers is dropped', async () => {
    const { sync, seen } = setup([tab('a', A), tab('silent', undefined)], 30);
    expect(await sync.syncStage(0, 10)).toBe(0);
    expect(seen.dropped).toEqual(['silent']);
  });
});
