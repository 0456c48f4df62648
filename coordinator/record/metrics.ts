/**
 * Prometheus metrics (prom-client), all under the `swarm_` prefix. One registry per coordinator
 * so tests can run several coordinators in one process.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export class SwarmMetrics {
  readonly registry = new Registry();
  readonly volunteers = new Gauge({ name: 'swarm_volunteers', help: 'Connected volunteers by state', labelNames: ['state'] as const, registers: [this.registry] });
  readonly stages = new Gauge({ name: 'swarm_stages', help: 'Pipeline stages in the run', registers: [this.registry] });
  readonly iteration = new Gauge({ name: 'swarm_iteration', help: 'Completed optimizer steps', registers: [this.registry] });
  readonly trainLoss = new Gauge({ name: 'swarm_train_loss', help: 'Mean training loss of the last iteration', registers: [this.registry] });
  readonly valLoss = new Gauge({ name: 'swarm_val_loss', help: 'Validation loss at the last evaluation', registers: [this.registry] });
  readonly tokens = new Counter({ name: 'swarm_tokens_total', help: 'Training tokens processed in completed iterations', registers: [this.registry] });
  readonly stageBackend = new Gauge({
    name: 'swarm_stage_backend',
    help: '1 for the tfjs backend serving each stage',
    labelNames: ['stage', 'backend'] as const,
    registers: [this.registry],
  });
  readonly iterationSeconds = new Histogram({
    name: 'swarm_iteration_seconds',
    help: 'Wall-clock time of completed iterations',
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 60, 120],
    registers: [this.registry],
  });
  readonly relayBytes = new Counter({
    name: 'swarm_relay_bytes_total',
    help: 'Bytes the coordinator sent tabs in tasks: activations (forward) and gradients (backward) it relayed, and the batches\' tokens and targets (data)',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });
  readonly p2pBytes = new Counter({
    name: 'swarm_p2p_bytes_total',
    help: 'Activation and gradient bytes tabs sent each other peer to peer (frames receivers reported taking, at their senders\' reported size; --transport p2p|auto)',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });
  readonly p2pFallbacks = new Counter({
    name: 'swarm_p2p_fallbacks_total',
    help: 'Frames meant for a peer that went through the relay instead, by reason (link failure, no WebRTC, pair backed off)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly p2pAudits = new Counter({
    name: 'swarm_p2p_audits_total',
    help: 'Peer-to-peer frames the coordinator fetched from their receiver and checked itself, by why and what it found (docs/p2p.md#trust)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly rejected = new Counter({
    name: 'swarm_rejected_messages_total',
    help: 'Messages from volunteers rejected by validation',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly recoveries = new Counter({
    name: 'swarm_recoveries_total',
    help: 'Losses of a tab that served a stage, by recovery-ladder rung (replica, handoff, strategy) and method',
    labelNames: ['rung', 'method'] as const,
    registers: [this.registry],
  });
  readonly inFlightWindow = new Gauge({
    name: 'swarm_in_flight_window',
    help: 'Microbatches the last training pass kept in flight at most (1F1B depth widened by measured hop round trips, within --max-in-flight)',
    registers: [this.registry],
  });
  readonly stageVacantSeconds = new Gauge({
    name: 'swarm_stage_vacant_seconds',
    help: 'Seconds each stage has waited for a volunteer (0 while served); over --vacancy-alert the run raises an alert',
    labelNames: ['stage'] as const,
    registers: [this.registry],
  });
  readonly stageReplicas = new Gauge({ name: 'swarm_stage_replicas', help: 'Tabs serving each stage (its group of replicas)', labelNames: ['stage'] as const, registers: [this.registry] });
  readonly reductionBytes = new Counter({
    name: 'swarm_reduction_bytes_total',
    help: 'Gradient bytes moved to combine the replicas of a stage (uploads and the sums sent back)',
    registers: [this.registry],
  });
  readonly dpSyncBytes = new Counter({
    name: 'swarm_dp_sync_bytes_total',
    help: '--dp diloco: pseudo-gradient bytes moved through the coordinator per stage (chunks up from every replica, the mean down to every replica)',
    labelNames: ['stage'] as const,
    registers: [this.registry],
  });
  readonly dpSyncSeconds = new Histogram({
    name: 'swarm_dp_sync_seconds',
    help: '--dp diloco: time of one sync of every stage (chunks up, means down, outer step)',
    buckets: [0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly dpDrift = new Gauge({
    name: 'swarm_dp_drift',
    help: '--dp diloco: at the last sync, the mean over a stage\'s replicas of |pseudo-gradient - mean| / |mean|',
    labelNames: ['stage'] as const,
    registers: [this.registry],
  });
  readonly recoverySeconds = new Histogram({
    name: 'swarm_recovery_seconds',
    help: 'Time from a lost stage detected to the next completed iteration',
    buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  readonly recoveryBytes = new Counter({
    name: 'swarm_recovery_bytes_total',
    help: 'Weight bytes moved for recoveries and replicas',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly staleResults = new Counter({ name: 'swarm_stale_results_total', help: 'Late results of abandoned attempts (dropped)', registers: [this.registry] });
  readonly replicaResyncs = new Counter({
    name: 'swarm_replica_resyncs_total',
    help: 'Replicas whose weights had drifted from their group (another device rounds differently) and were re-synced',
    registers: [this.registry],
  });
  readonly quarantined = new Counter({ name: 'swarm_quarantined_total', help: 'Tabs quarantined for poisoned numbers', registers: [this.registry] });
  readonly relayBlame = new Counter({
    name: 'swarm_relay_blame_total',
    help: "Tabs quarantined for the frames they relayed: upstream (a stage's outlier gradient traced to a frame that flowed into it) or jump (relayed frames far above their sender's history, its inputs not)",
    labelNames: ['rule'] as const,
    registers: [this.registry],
  });
  readonly suspicions = new Counter({
    name: 'swarm_screening_suspicions_total',
    help: 'Suspicions by the rule that raised them: upstream/jump (relay norms, suspect-review.ts), own (a stage\'s own gradient outlier, own-gradient-audit.ts), pseudo (a diloco pseudo-gradient outlier, pseudo-grad-review.ts): each is audited before anyone is convicted',
    labelNames: ['rule'] as const,
    registers: [this.registry],
  });
  readonly audits = new Counter({
    name: 'swarm_screening_audits_total',
    help: 'Suspicions by verdict: match (a sibling re-ran the hop and agrees: kept), mismatch (convicted), unverifiable (no sibling or no answer: iteration dropped, tab on probation)',
    labelNames: ['verdict'] as const,
    registers: [this.registry],
  });
  readonly probation = new Gauge({ name: 'swarm_screening_probation', help: 'Tabs on probation (an unverifiable suspicion: stricter relay thresholds for a while)', registers: [this.registry] });
  readonly abandoned = new Counter({ name: 'swarm_abandoned_iterations_total', help: 'Iterations abandoned because a stage was lost', registers: [this.registry] });

  readonly httpRejected = new Counter({
    name: 'swarm_http_rejected_total',
    help: 'HTTP requests answered with a 4xx/5xx before any route (bad target, foreign Host, method, parser errors)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly storeWriteFailures = new Counter({
    name: 'swarm_store_write_failures_total',
    help: 'SQLite writes that failed (busy, read-only, disk full); the rows are retried from a bounded queue',
    labelNames: ['table'] as const,
    registers: [this.registry],
  });
  readonly storeRowsDropped = new Counter({
    name: 'swarm_store_rows_dropped_total',
    help: 'Rows given up because the retry queue of failed SQLite writes was full',
    registers: [this.registry],
  });
  readonly authFailures = new Counter({
    name: 'swarm_operator_auth_failures_total',
    help: 'Operator requests with a missing or wrong token, and those refused by the per-address throttle',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly processErrors = new Counter({
    name: 'swarm_process_errors_total',
    help: 'Unhandled rejections and uncaught exceptions caught by the process-level handler',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  /** The stage gauges from who serves what now: active and spare tabs, replicas and backends per stage. */
  updateStages(groups: readonly (readonly { caps: { backend: string } }[])[], spares: number): void {
    this.volunteers.set({ state: 'active' }, groups.reduce((n, g) => n + g.length, 0));
    this.volunteers.set({ state: 'spare' }, spares);
    this.stageBackend.reset();
    for (const [s, g] of groups.entries()) {
      this.stageReplicas.set({ stage: String(s) }, g.length);
      for (const v of g) this.stageBackend.set({ stage: String(s), backend: v.caps.backend }, 1);
    }
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
