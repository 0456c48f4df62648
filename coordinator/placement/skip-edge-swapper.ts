/**
 * Carries out skip-edge-placement.ts's decision in the swarm (issue 24): between iterations,
 * when the run skips stages and a slow tab serves stage 0 or S-1 while a much faster one serves
 * an intermediate stage, the two tabs trade stages. Each stage's exact training state (weights and
 * Adam moments) is pulled from its tab and checked first; only then do both tabs leave their
 * stages and each is assigned the other's state (placement's assignment handshake), so the run
 * continues bit for bit as if nothing moved. At most one swap every EDGE_SWAP_MIN_GAP iterations,
 * only while every stage is served (no vacancy, no rebuild), and only between single-tab stages.
 *
 * If an assignment fails (the tab dropped on the way), the stage keeps the pulled state as its
 * pending weights, so the next tab that takes it (a waiting one, or a borrowed replica) continues
 * from it exactly; an intermediate stage is then trained around as any vacancy is.
 */
import type { ResolvedConfig } from '../../shared/model/config.js';
import { skipRules } from '../../shared/schedule/skip-paths.js';
import type { EventLog } from '../record/events-log.js';
import type { Logger } from '../record/log.js';
import type { BundleTransfer } from '../tabs/bundle-transfer.js';
import { pullStageState } from '../tabs/bundle-check.js';
import type { Volunteer } from '../tabs/registry.js';
import type { TabSpeeds } from '../tabs/tab-speed.js';
import { EDGE_SWAP_MIN_GAP, planEdgeSwap, type EdgeSwap } from './skip-edge-placement.js';
import type { StageTable } from './stage-table.js';
import { stageCostFactors, type TabStageTime } from './stage-cost-estimate.js';

/** Tasks a tab must have answered on its stage before its time decides a swap. */
export const EDGE_SWAP_MIN_TASKS = 8;

export interface SkipEdgeOptions {
  config: ResolvedConfig;
  skipRatio: number;
  microbatches: number;
  /** The collision-aware schedule (its intermediate caps follow speed). */
  followSpeed: boolean;
  /** Relative work of one task of each stage. */
  work: readonly number[];
}

export interface SkipEdgeDeps {
  stages: StageTable;
  transfer: BundleTransfer;
  speeds: TabSpeeds;
  events: EventLog;
  log: Logger;
  /** Placement's assignment handshake (reserve, send, confirm); false when it failed (the tab is dropped). */
  assign: (v: Volunteer, stage: number, state: Uint8Array, reason: string) => Promise<boolean>;
}

export class SkipEdgeSwapper {
  private lastSwap = -Infinity;
  /** Each serving tab's last measured time per task on each stage it served (stage-cost-estimate.ts). */
  private seen = new Map<Volunteer, Map<number, number>>();

  constructor(readonly opts: SkipEdgeOptions, private deps: SkipEdgeDeps) {}

  /** The swap the measured speeds call for now, or null. */
  plan(): EdgeSwap | null {
    const { stages, speeds } = this.deps;
    if (!stages.ready()) return null;
    const S = stages.nStages;
    // A tab counts once it answered EDGE_SWAP_MIN_TASKS tasks (its first ones carry a cold start).
    const measured = (v: Volunteer) => (speeds.done(v) >= EDGE_SWAP_MIN_TASKS ? speeds.taskMs(v) : null);
    const tabMs = Array.from({ length: S }, (_, s) => (stages.size(s) === 1 && stages.reservations(s) === 0 ? measured(stages.owner(s)!) : null));
    const rules = skipRules({ nStages: S, skipRatio: this.opts.skipRatio });
    const work = this.stageCosts();
    return planEdgeSwap({ rules, microbatches: this.opts.microbatches, tabMs, work, followSpeed: this.opts.followSpeed });
  }

  /** Per-stage cost of a task: the parameters' work, corrected by what tabs that served two stages measured. */
  stageCosts(): number[] {
    const { stages, speeds } = this.deps;
    const serving = new Set(stages.allReplicas());
    for (const v of this.seen.keys()) if (!serving.has(v)) this.seen.delete(v);
    for (const v of serving) {
      const ms = speeds.taskMs(v);
      if (ms === null || v.stage === null) continue;
      if (!this.seen.has(v)) this.seen.set(v, new Map());
      this.seen.get(v)!.set(v.stage, ms);
    }
    const obs: TabStageTime[] = [];
    for (const [v, byStage] of this.seen) for (const [stage, ms] of byStage) obs.push({ tab: v.id, stage, ms });
    return stageCostFactors(obs, this.opts.work, [0, stages.nStages - 1]);
  }

  /** After iteration `iteration`: the swap, if one is due and called for. Returns it when made. */
  async maybeSwap(iteration: number): Promise<EdgeSwap | null> {
    if (iteration - this.lastSwap < EDGE_SWAP_MIN_GAP) return null;
    const p = this.plan();
    if (!p) return null;
    const { stages, transfer, speeds, events, log } = this.deps;
    const a = stages.owner(p.edge)!;
    const b = stages.owner(p.intermediate)!;
    let edgeState: Uint8Array;
    let midState: Uint8Array;
    try {
      edgeState = await pullStageState(transfer, this.opts.config, p.edge, a);
      midState = await pullStageState(transfer, this.opts.config, p.intermediate, b);
    } catch (e) {
      log.warn({ edge: p.edge, intermediate: p.intermediate, err: (e as Error).message }, 'edge swap: could not copy a stage state');
      return null;
    }
    // Nothing changed while the states were on the way (the loop is between iterations, but a tab may have left).
    if (stages.owner(p.edge) !== a || stages.owner(p.intermediate) !== b || stages.size(p.edge) !== 1 || stages.size(p.intermediate) !== 1) return null;
    this.lastSwap = iteration;
    stages.remove(a);
    stages.remove(b);
    // Their speeds were measured on the other stage's work.
    speeds.forget(a);
    speeds.forget(b);
    events.add(
      'assign',
      `skip edge swap: ${b.id} (stage ${p.intermediate}) takes edge stage ${p.edge} from slower ${a.id}, which takes stage ${p.intermediate} (busiest stage ${p.beforeMs.toFixed(0)} -> ${p.afterMs.toFixed(0)} ms per iteration, predicted${p.then ? `, once stage ${p.then.intermediate}'s tab also takes edge stage ${p.then.edge}` : ''})`,
      { volunteer: b.id, from: p.intermediate, to: p.edge, other: a.id, move: true, beforeMs: p.beforeMs, afterMs: p.afterMs },
    );
    const okEdge = await this.deps.assign(b, p.edge, edgeState, `edge swap: state of ${a.id}`);
    const okMid = await this.deps.assign(a, p.intermediate, midState, `edge swap: state of ${b.id}`);
    if (!okEdge) stages.setPending(p.edge, { weights: edgeState, reason: `edge swap: state of ${a.id}`, lrScale: 1 });
    if (!okMid) stages.setPending(p.intermediate, { weights: midState, reason: `edge swap: state of ${b.id}`, lrScale: 1 });
    return okEdge && okMid ? p : null;
  }
}
