/**
 * The time model (shared/schedule/skip-timing.ts) over placements of tabs on the SkipPipe edge
 * stages: which iteration time a draw of tab speeds allows at all once the edge placement
 * (coordinator/placement/skip-edge-swapper.ts) has moved tabs, and how many of its swaps (an edge
 * stage's tab with an intermediate one's) each placement takes from the tabs as joined. Used to
 * tell a scheduler's shortfall from the draw's (docs/benchmarks.md, bench:skip-swarm seed 2).
 *
 *   npx tsx bench/skip-placements.ts --paces 99,66,63,83,110,90,80,69 [--ratio 0.33] [--microbatches 8] [--iterations 4] [--top 12]
 *
 * Placements: the tabs as joined, with every choice of one tab for stage 0 and one for stage S-1
 * (the displaced edge tabs take their places); collision-aware schedule over `--iterations`
 * iterations (speed-following caps, free links, backward 2x); x full against the full pipeline as
 * joined. Pure computation, no swarm.
 */
import { skipRules } from '../shared/schedule/skip-paths.js';
import { collisionSchedule } from '../shared/schedule/skip-collision.js';
import { simulateIteration, type StageCosts } from '../shared/schedule/skip-timing.js';
import { flags, fmt, machine, table } from './util.js';

const costsOf = (p: readonly number[]): StageCosts => ({ forwardMs: p, backwardMs: p.map((x) => 2 * x), linkMs: p.map(() => p.map(() => 0)) });

/** Fewest edge-with-intermediate swaps from `from` to `to` (tab ids by stage), breadth first; Infinity past `limit`. */
function swapsBetween(from: readonly number[], to: readonly number[], limit = 4): number {
  const S = from.length;
  const key = (p: readonly number[]) => p.join(',');
  let frontier = [from];
  const seen = new Set([key(from)]);
  for (let d = 0; d <= limit; d++) {
    if (frontier.some((p) => key(p) === key(to))) return d;
    const next: number[][] = [];
    for (const p of frontier) {
      for (const e of [0, S - 1]) {
        for (let i = 1; i < S - 1; i++) {
          const q = [...p];
          [q[e], q[i]] = [q[i]!, q[e]!];
          if (!seen.has(key(q))) {
            seen.add(key(q));
            next.push(q);
          }
        }
      }
    }
    frontier = next;
  }
  return Infinity;
}

function main(): void {
  const f = flags(process.argv.slice(2), { paces: 'string', ratio: 'string', microbatches: 'string', iterations: 'string', top: 'string' });
  const paces = String(f.paces ?? '').split(',').map(Number);
  if (paces.length < 3 || !paces.every((x) => Number.isFinite(x) && x > 0)) throw new Error('--paces needs at least 3 positive forward ms, comma-separated');
  const S = paces.length;
  const M = Number(f.microbatches ?? 8);
  const iterations = Number(f.iterations ?? 4);
  const rules = skipRules({ nStages: S, skipRatio: Number(f.ratio ?? 0.33) });
  const model = (p: number[]) => {
    let t = 0;
    for (let it = 0; it < iterations; it++) t += collisionSchedule({ rules, microbatches: M, iteration: it, swap: false, seed: 1, speed: p.map((x) => 1 / x) }, costsOf(p)).makespanMs;
    return t / iterations;
  };
  const joined = paces.map((_, s) => s); // tab ids by stage
  const full = simulateIteration(Array.from({ length: M }, () => joined), S, costsOf(paces)).makespanMs;
  const rows: { tabs: number[]; ms: number; swaps: number }[] = [];
  for (let a = 0; a < S; a++) {
    for (let b = 0; b < S; b++) {
      if (a === b) continue;
      const tabs = [...joined];
      const put = (tab: number, stage: number) => {
        const at = tabs.indexOf(tab);
        [tabs[stage], tabs[at]] = [tabs[at]!, tabs[stage]!];
      };
      put(a, 0);
      put(b, S - 1);
      if (tabs[0] !== a) continue;
      rows.push({ tabs, ms: model(tabs.map((t) => paces[t]!)), swaps: swapsBetween(joined, tabs) });
    }
  }
  rows.sort((x, y) => x.ms - y.ms);
  console.log(`bench skip-placements (${machine()}): ${S} stages, paths of ${rules.visit} of ${S} stages, M = ${M}, collision-aware over ${iterations} iterations; full pipeline as joined ${fmt(full, 0)} ms`);
  const top = rows.slice(0, Number(f.top ?? 12));
  console.log(table(['forward ms by stage', 'edge swaps from joined', 'model ms', 'x full'], top.map((r) => [r.tabs.map((t) => paces[t]).join(' '), r.swaps === Infinity ? '>4' : r.swaps, fmt(r.ms, 0), fmt(r.ms / full, 3)])));
}

main();
