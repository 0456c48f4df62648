/**
 * Each volunteer's link utilisation over a measured window, from the link emulator's counters
 * (testing/link-emulator.ts `delivered`): bytes delivered each way, as a fraction of what the
 * link could carry in that time (rate x seconds). Pure arithmetic over measured numbers.
 */
import type { LinkSpec } from '../testing/link-emulator.js';

/** One tab's counters at a moment (bytes delivered up and down so far) and the stage it serves. */
export interface TabLinkCount {
  name: string;
  stage: number;
  up: number;
  down: number;
}

export interface LinkUse {
  name: string;
  stage: number;
  /** Fractions of the link's capacity used over the window, 0..1. */
  up: number;
  down: number;
}

/** Utilisation of every tab present in both snapshots, by stage then name. */
export function linkUse(before: readonly TabLinkCount[], after: readonly TabLinkCount[], seconds: number, link: LinkSpec): LinkUse[] {
  if (!(seconds > 0)) throw new RangeError(`window must be positive, got ${seconds} s`);
  const start = new Map(before.map((c) => [c.name, c]));
  const capUp = (link.upMbps * 1e6 * seconds) / 8;
  const capDown = (link.downMbps * 1e6 * seconds) / 8;
  return after
    .filter((c) => start.has(c.name))
    .map((c) => ({ name: c.name, stage: c.stage, up: (c.up - start.get(c.name)!.up) / capUp, down: (c.down - start.get(c.name)!.down) / capDown }))
    .sort((a, b) => a.stage - b.stage || a.name.localeCompare(b.name));
}

/** "s0 12/3 11/3 | s1 ..." : each tab's up/down use in percent, grouped by stage. */
export function formatLinkUse(uses: readonly LinkUse[]): string {
  const byStage = new Map<number, LinkUse[]>();
  for (const u of uses) byStage.set(u.stage, [...(byStage.get(u.stage) ?? []), u]);
  const pct = (x: number) => (x * 100).toFixed(0);
  return [...byStage.entries()].map(([s, us]) => `s${s < 0 ? '?' : s} ${us.map((u) => `${pct(u.up)}/${pct(u.down)}`).join(' ')}`).join(' | ');
}
