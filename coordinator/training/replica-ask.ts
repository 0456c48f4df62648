/**
 * The barrier's one way of asking a stage's replicas a question about iteration `it`
 * (`grad_norm`, `step`): ask, check that the answer is about this iteration, and treat failures
 * alike. A tab that went away while its stage has other replicas is left out (null); a bad answer
 * is an offence; a tab silent past its deadline is dropped as unresponsive (it computes its tasks
 * but would hold every barrier). Either of the last two abandons the iteration. The deadline
 * adapts to the answer times the other tabs measure (answer-times.ts: a few times their p99,
 * floor a few seconds, the configured `--step-timeout` at most), so silence costs seconds.
 */
import type { z } from 'zod';
import { askStage, AskError } from '../tabs/ask-stage.js';
import type { Volunteer } from '../tabs/registry.js';
import type { StageTable } from '../placement/stage-table.js';
import type { SwarmMetrics } from '../record/metrics.js';
import type { Reject } from './task-book.js';
import { IterationAbandoned } from './iteration-abandoned.js';
import { BARRIER_DEADLINE, type AnswerTimes } from './answer-times.js';

export type BarrierQuestion = 'grad_norm' | 'step';

export interface ReplicaAskDeps {
  stages: StageTable;
  metrics: SwarmMetrics;
  reject: Reject;
  /** Drops a tab that answers pings but not our questions. */
  unresponsive: (v: Volunteer, why: string) => void;
  /** The longest any answer may take (`--step-timeout`). */
  timeoutMs: number;
  /** Recent answer times per question (the deadline adapts to them). */
  times: AnswerTimes;
  /** Bytes of a bundle the tab is sending now (its deadline grows by their time on a slow link). */
  movingBytes: (v: Volunteer) => number;
}

/** The key of a question's answer times. */
export function answerKey(event: BarrierQuestion): string {
  return `barrier:${event}`;
}

/** Names for the event log. */
const WHAT: Record<BarrierQuestion, string> = { grad_norm: 'gradient-norm', step: 'step' };

export class ReplicaAsk {
  constructor(private deps: ReplicaAskDeps) {}

  /** The replicas hold the same answer: ask one; if it went away, the next. */
  async first<T extends { iteration: number }>(group: readonly Volunteer[], stage: number, event: BarrierQuestion, it: number, schema: z.ZodType<T>): Promise<T> {
    for (const v of group) {
      const ack = await this.ask(v, stage, event, it, schema);
      if (ack) return ack;
    }
    throw new IterationAbandoned(stage, [], `no replica of stage ${stage} answered for its ${WHAT[event]}`);
  }

  /** Every replica's answer, null for one that went away. */
  each<T extends { iteration: number }>(group: readonly Volunteer[], stage: number, event: BarrierQuestion, it: number, schema: z.ZodType<T>): Promise<(T | null)[]> {
    return Promise.all(group.map((v) => this.ask(v, stage, event, it, schema)));
  }

  /** How long `v` may take to answer `event` now. */
  deadlineMs(v: Volunteer, event: BarrierQuestion): number {
    return this.deps.times.deadline(answerKey(event), BARRIER_DEADLINE, this.deps.timeoutMs, v, this.deps.movingBytes(v));
  }

  private async ask<T extends { iteration: number }>(v: Volunteer, stage: number, event: BarrierQuestion, it: number, schema: z.ZodType<T>): Promise<T | null> {
    const timeoutMs = this.deadlineMs(v, event);
    const t0 = Date.now();
    const ack = await askStage(v, event, [{ iteration: it }], schema, timeoutMs).catch((e: unknown) => {
      if (this.wentAway(v, e, stage)) return null;
      this.failed(v, e, WHAT[event], timeoutMs);
      throw new IterationAbandoned(stage, []);
    });
    if (!ack) return null;
    this.deps.times.record(answerKey(event), Date.now() - t0, v);
    if (ack.iteration !== it) {
      this.deps.reject(v, 'step', `${WHAT[event]} acknowledgement for iteration ${ack.iteration}, not ${it}`);
      throw new IterationAbandoned(stage, []);
    }
    return ack;
  }

  /** The request failed because the tab went away while its stage has other replicas. */
  private wentAway(v: Volunteer, e: unknown, stage: number): boolean {
    if (!(e instanceof AskError) || e.failure !== 'disconnected') return false;
    return this.deps.stages.replicas(stage).some((r) => r !== v);
  }

  /** A bad reply is an offence; a tab that does not answer within the timeout is treated as lost. */
  private failed(v: Volunteer, e: unknown, what: string, timeoutMs: number): void {
    if (!(e instanceof AskError)) return;
    if (e.failure === 'invalid') this.deps.reject(v, 'step', `bad ${what} acknowledgement: ${e.message}`);
    else if (e.failure === 'timeout') {
      this.deps.metrics.rejected.inc({ reason: 'silent' });
      this.deps.unresponsive(v, `no ${what} acknowledgement within ${timeoutMs} ms (its deadline: ${BARRIER_DEADLINE.factor}x the other tabs' recent p99, at least ${BARRIER_DEADLINE.floorMs} ms)`);
    }
  }
}
