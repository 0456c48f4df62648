/**
 * What the scheduler is given to reach beyond the training loop: the recovery ladder, the tabs
 * (through their connections), and the broadcast of the run's status.
 */
import type { RunStatus } from '../../shared/protocol/events.js';
import type { Volunteer } from '../tabs/registry.js';
import type { Reject, TaskSender } from './task-book.js';
import type { P2pRoutes } from './p2p-routes.js';

/** The recovery ladder's rungs, as the scheduler reaches them (recovery.ts). */
export interface RecoveryLadder {
  /** The strategy rung: a stage's last replica is gone; resolves once the strategy has rebuilt (or set out to rebuild) it. */
  stageLost(stage: number, opts: { distrust: boolean }): Promise<void>;
  /** The replica rung: `rerun` hops ran again now, or null when it was lost at the barrier. */
  replicaLost(stage: number, v: Volunteer, rerun: number | null): void;
}

/** What the scheduler may do to tabs (the connections own them). */
export interface TabActions {
  sender: TaskSender;
  reject: Reject;
  quarantine: (v: Volunteer, reason: string) => void;
  /** Drops a tab that answers pings but not its tasks or barrier questions. */
  unresponsive: (v: Volunteer, why: string) => void;
  /** `--transport p2p|auto`: which outputs go peer to peer (absent: all relayed). */
  p2p?: P2pRoutes;
}

/** How the run's status reaches every tab (one broadcast each). */
export interface StatusBroadcast {
  status(s: RunStatus): void;
  /** Every tab serving a stage: the current pass is abandoned. */
  abandon(iteration: number): void;
}
