/**
 * What the operator side may read and ask of the coordinator: a narrow view, built by server.ts,
 * instead of the whole coordinator (so the operator neither reaches into every part nor imports
 * the server).
 */
import type { ResolvedConfig } from '../../shared/model/config.js';
import type { RunSettings, RecoveryStrategy } from '../../shared/run-settings.js';
import type { RunStatus } from '../../shared/protocol/events.js';
import type { CpsrStatus } from '../../shared/protocol/operator.js';
import type { P2pSummary } from '../../shared/protocol/operator.js';
import type { Tokenizer } from '../../shared/data/tokenizer.js';
import type { Volunteer } from '../tabs/registry.js';
import type { TabSpeeds } from '../tabs/tab-speed.js';
import type { StageTable } from '../placement/stage-table.js';
import type { RunStore } from '../record/store.js';
import type { EventLog } from '../record/events-log.js';
import type { SwarmMetrics } from '../record/metrics.js';
import type { Logger } from '../record/log.js';
import type { RecordedSchedule } from '../../shared/schedule/recorded-schedule.js';

/** The run as the operator sees it and steers it. */
export interface OperatorRun {
  readonly settings: RunSettings;
  readonly config: ResolvedConfig;
  readonly swap: boolean;
  readonly nStages: number;
  /** The run's tokenizer: samples are encoded and decoded with it, the export carries it. */
  readonly tokenizer: Tokenizer;
  /** Validation batches per measurement (0: the run never validates). */
  readonly evalBatches: number;
  /** How long an iteration's barrier may take (an export waits for the iteration in progress). */
  readonly stepTimeoutMs: number;
  runId(): string;
  status(): RunStatus;
  iteration(): number;
  /** Holds the run after the current iteration (true) or lets it go on. */
  setPaused(paused: boolean): void;
  /** Measures the validation loss of the weights the tabs hold now (through the stages `stages` only, when given: a partial model). */
  validate(stages?: readonly number[]): Promise<number>;
  strategy(): RecoveryStrategy;
  /** The recovery strategy for the next failure. */
  setStrategy(s: RecoveryStrategy): void;
  /** SkipPipe: the skip paths of the applied iterations, as the local trainer replays them (null: full paths). */
  skipSchedule(): RecordedSchedule | null;
  /** CPSR's planner, fits and last restore (null under other strategies). */
  cpsr?(): CpsrStatus | null;
  /** `--transport` and its fallbacks (the dashboard). */
  p2p(): P2pSummary;
}

/** The tabs as the operator sees them. */
export interface OperatorTabs {
  readonly stages: Pick<StageTable, 'replicas' | 'owner' | 'pendingFor' | 'isRebuilding'>;
  readonly speeds: Pick<TabSpeeds, 'taskMs' | 'done'>;
  spares(): Volunteer[];
  /** Every weight of `v`'s stage (pulled in chunks; not yet checked). */
  pullWeights(v: Volunteer, timeoutMs: number): Promise<Uint8Array>;
  /** Removes a tab for good (an injected failure); its stage goes down the recovery ladder. */
  drop(v: Volunteer, why: string): Promise<void>;
}

export interface OperatorContext {
  run: OperatorRun;
  tabs: OperatorTabs;
  store: Pick<RunStore, 'getRun' | 'iterations' | 'events' | 'listRuns' | 'detail' | 'addIteration' | 'assignments'>;
  events: EventLog;
  metrics: SwarmMetrics;
  log: Logger;
  /** Client addresses come from X-Forwarded-For (a trusted reverse proxy is in front). */
  trustProxy: boolean;
}
