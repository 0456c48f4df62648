/**
 * Keeps the replicas of a stage bit-identical. They receive the same summed gradient and take
 * the same clip and Adam step, so on one kind of device they stay identical by construction; on
 * different GPUs or backends (WebGPU on two vendors, WebGPU next to wasm) the same step rounds
 * differently and the copies drift apart, a few ulps per step, more over time.
 *
 * Every `every` iterations, between iterations, each replica of every stage with several sends a
 * fingerprint of its weights and its Adam step count (shared/model/digest.ts). The state most
 * replicas share is the stage's (a tie: the one of the replica that joined first); a replica that
 * differs gets that exact state (weights and Adam moments), pulled from a replica that has it and
 * checked against the stage's specs before it is handed on. Every re-sync is an event and counted
 * in `swarm_replica_resyncs_total`; its bytes in `swarm_recovery_bytes_total{kind="resync"}`.
 */
import { encodeStageState } from '../../shared/protocol/index.js';
import { digestAckSchema, type DigestAck } from '../../shared/protocol/events.js';
import type { ResolvedConfig } from '../../shared/model/config.js';
import { checkStageState } from '../tabs/bundle-check.js';
import type { Volunteer } from '../tabs/registry.js';
import { AskError, askStage, ASK_TIMEOUT_MS } from '../tabs/ask-stage.js';
import type { StagePuller } from '../tabs/stage-puller.js';
import type { SwarmMetrics } from '../record/metrics.js';
import type { EventLog } from '../record/events-log.js';
import type { Logger } from '../record/log.js';

export interface ReplicaSyncDeps {
  config: ResolvedConfig;
  nStages: number;
  /** The tabs serving a stage, in the order they joined it. */
  replicas: (stage: number) => readonly Volunteer[];
  puller: StagePuller;
  /** Loads `state` into a tab that serves `stage` now. */
  reload: (v: Volunteer, stage: number, state: Uint8Array, reason: string) => Promise<void>;
  /** How long a tab may take to send its fingerprint (default ASK_TIMEOUT_MS.weights). */
  timeoutMs?: number;
  /** A tab did not answer in time: drop it. */
  unresponsive: (v: Volunteer, why: string) => void;
  reject: (v: Volunteer, reason: string, message: string) => void;
  /** Tells a stage's tabs their place in the group again (a reload clears it on the tab). */
  announceGroup: (stage: number) => void;
  metrics: SwarmMetrics;
  events: EventLog;
  log: Logger;
}

/** What replicas must agree on: their weights' fingerprint and their Adam step count. */
const stateKey = (d: DigestAck) => `${d.digest}@${d.step}`;

export class ReplicaSync {
  constructor(
    /** Compare every this many iterations (0 = never). */
    private every: number,
    private deps: ReplicaSyncDeps,
  ) {}

  /** After iteration `iteration` completed (before the next starts). */
  async afterIteration(iteration: number): Promise<void> {
    if (this.every <= 0 || iteration % this.every !== 0) return;
    for (let s = 0; s < this.deps.nStages; s++) {
      await this.syncStage(s, iteration).catch((e: Error) => this.deps.log.warn({ stage: s, err: e.message }, 'replica re-sync failed'));
    }
  }

  /** Compares the replicas of `stage`; re-syncs the ones that drifted. Returns how many did. */
  async syncStage(stage: number, iteration: number): Promise<number> {
    const { deps } = this;
    const group = [...deps.replicas(stage)];
    if (group.length < 2) return 0;
    const answers = await Promise.allSettled(group.map((v) => askStage(v, 'weights_digest', [{ iteration }], digestAckSchema, deps.timeoutMs ?? ASK_TIMEOUT_MS.weights)));
    const keys = new Map<Volunteer, string>();
    for (const [i, a] of answers.entries()) {
      const v = group[i]!;
      if (a.status === 'fulfilled') keys.set(v, stateKey(a.value));
      else if (a.reason instanceof AskError && a.reason.failure === 'timeout') deps.unresponsive(v, `no answer to a weights fingerprint request: ${a.reason.message}`);
      else if (a.reason instanceof AskError && a.reason.failure === 'invalid') deps.reject(v, 'schema', a.reason.message);
    }
    const counts = new Map<string, number>();
    for (const k of keys.values()) counts.set(k, (counts.get(k) ?? 0) + 1);
    // The state most replicas share; among equals, the earliest replica's (group is in joining order).
    let ref: string | null = null;
    for (const v of group) {
      const k = keys.get(v);
      if (k !== undefined && (ref === null || counts.get(k)! > counts.get(ref)!)) ref = k;
    }
    const drifted = group.filter((v) => keys.has(v) && keys.get(v) !== ref);
    if (ref === null || drifted.length === 0) return 0;
    const holders = group.filter((v) => keys.get(v) === ref);
    const got = await deps.puller.pullFrom(holders, 'state', (raw) => encodeStageState(checkStageState(deps.config, stage, raw)));
    let bytes = got.bytes;
    const synced: Volunteer[] = [];
    for (const v of drifted) {
      try {
        await deps.reload(v, stage, got.value, `re-sync with ${got.from.id}`);
        bytes += got.value.byteLength;
        synced.push(v);
      } catch (e) {
        deps.log.warn({ stage, volunteer: v.id, err: (e as Error).message }, 'replica re-sync failed');
      }
    }
    deps.metrics.replicaResyncs.inc(synced.length);
    deps.metrics.recoveryBytes.inc({ kind: 'resync' }, bytes);
    const backends = (vs: Volunteer[]) => [...new Set(vs.map((v) => v.caps.backend))].join('/');
    deps.events.add(
      'run',
      `stage ${stage}: ${synced.map((v) => v.id).join(', ')} (${backends(drifted)}) had drifted from the group's weights after iteration ${iteration}; ` +
        `re-synced from ${got.from.id} (${backends([got.from])}), ${(bytes / 1024).toFixed(1)} KiB moved`,
      { stage, iteration, drifted: drifted.map((v) => v.id), source: got.from.id, bytes, resync: true },
    );
    deps.announceGroup(stage);
    return synced.length;
  }
}
