/**
 * Screening benchmark (issue 22): false convictions of honest swarms and detection of poisoned
 * volunteers, side by side in one run. Live swarms (Coordinator + Node volunteers on wasm, all in
 * this process).
 *
 *   npm run bench:screening -- --quick          (a few minutes on 2 cores)
 *   npm run bench:screening                     (every configuration, long)
 *   npm run bench:screening -- --iterations 2000 --configs issue22,mb16
 *   npm run bench:screening -- --skip-honest --modes inflate-sent-grads,mute-step
 *
 * Honest part: each configuration (batch 1-8, sequence 32-256, microbatches 2-16, every recovery
 * strategy with a rebuilt stage, tiny and small, churn, a new replica) trains with nobody
 * misbehaving; S+1 volunteers, so one stage has a sibling (its suspicions can be audited) and the
 * others do not (theirs are unverifiable). Printed per configuration and in total, as counts and
 * per 10,000 honest iterations:
 *   q:upstream q:jump q:grad   quarantines by rule (relay `upstream`, relay `jump`, a stage's own
 *                              gradient outlier or a non-finite frame): the target is 0
 *   susp                       suspicions of every rule (relay `upstream`/`jump`, a stage's own gradient
 *                              `own`, a diloco pseudo-gradient `pseudo`), each audited or judged unverifiable
 *   match mism unver           audit verdicts (mismatch convicts; unverifiable: probation)
 *   prob                       tabs put on probation
 *   max diff                   largest relative difference of an honest audit (the wire tolerance
 *                              it must stay under: coordinator/screening/hop-audit.ts)
 *
 * Poisoned part: for every poisoned mode (testing/poisoned-volunteer.ts), once with a sibling for
 * the poisoned tab's stage (max replicas 2) and once without (max replicas 1, a spare): trains a
 * norm history, poisons one tab, and reports what happened to it within `--budget` iterations:
 * expelled (quarantined, or dropped as unresponsive: the mute modes), probation (suspected, no
 * sibling: its iteration dropped), or missed; and the iterations from poisoning to that. A tab put
 * on probation is watched 3 more iterations: convicted on the audit sibling placed for it
 * (coordinator/screening/audit-siblings.ts), it counts as expelled ("quarantined after probation").
 */
import { Coordinator, DEFAULT_COORDINATOR } from '../coordinator/server.js';
import { startPoisonedVolunteer, type PoisonMode, type PoisonedVolunteer } from '../testing/poisoned-volunteer.js';
import { DEFAULT_SETTINGS, type RecoveryStrategy, type RunSettings } from '../shared/run-settings.js';
import { until } from '../testing/until.js';
import { flags, fmt, list, machine, sleep, table } from './util.js';

interface HonestConfig {
  name: string;
  preset: 'tiny' | 'small';
  stages: number;
  seqLen: number;
  batch: number;
  microbatches: number;
  recovery: RecoveryStrategy;
  /** Kill a random tab and start a new one every this many iterations. */
  churnEvery?: number;
  /** Kill a single-replica stage's tab at this iteration and start a new one (the stage is rebuilt). */
  rebuildAt?: number;
  /** Start one more volunteer at this iteration (it joins as a replica). */
  replicaAt?: number;
  /** Share of `--iterations` this configuration runs (heavy ones run fewer). */
  share?: number;
}

const C = (name: string, c: Partial<HonestConfig>): HonestConfig => ({ name, preset: 'tiny', stages: 4, seqLen: 32, batch: 1, microbatches: 2, recovery: 'checkfree+', ...c });

const STRATEGIES: RecoveryStrategy[] = ['checkfree+', 'checkfree', 'checkpoint', 'cpsr', 'stage-restore', 'redundant', 'none'];

const CONFIGS: HonestConfig[] = [
  C('issue22', {}),
  C('issue22-checkfree', { recovery: 'checkfree' }),
  C('b8-seq32', { batch: 8 }),
  C('b1-seq256', { seqLen: 256, share: 0.5 }),
  C('b4-seq128-mb8', { batch: 4, seqLen: 128, microbatches: 8, share: 0.25 }),
  C('mb16', { microbatches: 16, share: 0.25 }),
  C('b8-seq256-mb16', { batch: 8, seqLen: 256, microbatches: 16, share: 0.05 }),
  C('small-b1', { preset: 'small', share: 0.5 }),
  C('small-b2-seq128-mb4', { preset: 'small', batch: 2, seqLen: 128, microbatches: 4, share: 0.2 }),
  C('churn', { churnEvery: 40 }),
  C('new-replica', { replicaAt: 30 }),
  ...STRATEGIES.map((r) => C(`rebuilt-${r}`, { recovery: r, rebuildAt: 20 })),
];

const QUICK = ['issue22', 'issue22-checkfree', 'b8-seq32', 'mb16', 'small-b1', 'churn', 'new-replica', 'rebuilt-checkfree+', 'rebuilt-checkpoint'];

type Counts = Record<string, number>;

function metricValue(text: string, name: string, label?: string): number {
  const re = new RegExp(`^${name}${label ? `\\{${label}\\}` : ''} (\\S+)$`, 'm');
  return Number(re.exec(text)?.[1] ?? 0);
}

async function honestRun(c: HonestConfig, iterations: number): Promise<Counts & { maxDiff: number }> {
  const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: c.preset, stages: c.stages, seqLen: c.seqLen, batch: c.batch, microbatches: c.microbatches, recovery: c.recovery };
  const coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, evalEvery: 0, graceMs: 200, maxIterations: iterations, clientDir: '/nonexistent' });
  const url = await coord.listen();
  const vols: PoisonedVolunteer[] = [];
  let n = 0;
  const add = async () => vols.push(await startPoisonedVolunteer(url, null, { name: `h${n++}` }));
  const t0 = Date.now();
  try {
    for (let i = 0; i <= c.stages; i++) await add();
    let nextChurn = c.churnEvery ?? Infinity;
    let rebuilt = c.rebuildAt === undefined;
    let replicaAdded = c.replicaAt === undefined;
    while (coord.scheduler.iteration < iterations) {
      const it = coord.scheduler.iteration;
      if (it >= nextChurn) {
        nextChurn += c.churnEvery!;
        const alive = vols.filter((v) => v.socket.connected);
        alive[(it * 7919) % alive.length]!.kill();
        await add();
      }
      if (!rebuilt && it >= c.rebuildAt!) {
        rebuilt = true;
        const lone = Array.from({ length: c.stages }, (_, s) => s).find((s) => coord.stages.replicas(s).length === 1);
        const id = lone === undefined ? null : coord.stages.owner(lone)!.id;
        vols.find((v) => v.status().volunteerId === id)?.kill();
        await add();
      }
      if (!replicaAdded && it >= c.replicaAt!) {
        replicaAdded = true;
        await add();
      }
      if (coord.events.list('quarantine').length > 0 && coord.stages.replicas(0).length === 0) break;
      await sleep(20);
      if (Date.now() - t0 > 20 * 60_000) break;
    }
    const text = await coord.metrics.text();
    const quarantines = coord.events.list('quarantine').length;
    for (const e of coord.events.list('quarantine')) console.log(`    quarantine in ${c.name} at iteration ${coord.scheduler.iteration}: ${e.message}`);
    const upstream = metricValue(text, 'swarm_relay_blame_total', 'rule="upstream"');
    const jump = metricValue(text, 'swarm_relay_blame_total', 'rule="jump"');
    const diffs = coord.events
      .list('run')
      .map((e) => e.data)
      .filter((d) => d?.verdict === 'match' && typeof d.diff === 'number')
      .map((d) => d!.diff as number);
    return {
      iterations: coord.scheduler.iteration,
      'q:upstream': upstream,
      'q:jump': jump,
      'q:grad': quarantines - upstream - jump,
      susp: ['upstream', 'jump', 'own', 'pseudo'].reduce((sum, rule) => sum + metricValue(text, 'swarm_screening_suspicions_total', `rule="${rule}"`), 0),
      match: metricValue(text, 'swarm_screening_audits_total', 'verdict="match"'),
      mism: metricValue(text, 'swarm_screening_audits_total', 'verdict="mismatch"'),
      unver: metricValue(text, 'swarm_screening_audits_total', 'verdict="unverifiable"'),
      prob: coord.events.list('run').filter((e) => /on probation until/.test(e.message)).length,
      seconds: (Date.now() - t0) / 1000,
      maxDiff: diffs.length ? Math.max(...diffs) : NaN,
    };
  } finally {
    for (const v of vols) v.kill();
    await coord.close();
  }
}

const MODES: { mode: NonNullable<PoisonMode>; stage: number }[] = [
  { mode: 'nan', stage: 0 },
  { mode: 'huge-grads', stage: 1 },
  { mode: 'inflate-sent-grads', stage: 1 },
  { mode: 'inflate-sent-acts', stage: 0 },
  { mode: 'mute-grad-norm', stage: 1 },
  { mode: 'mute-step', stage: 1 },
];

interface Detection {
  mode: string;
  layout: string;
  outcome: 'expelled' | 'probation' | 'missed';
  iterations: number;
  how: string;
}

async function poisonedRun(mode: NonNullable<PoisonMode>, stage: number, sibling: boolean, budget: number): Promise<Detection> {
  const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 2, microbatches: 2, batch: 2, recovery: 'checkfree' };
  const coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, evalEvery: 0, graceMs: 200, maxReplicas: sibling ? 2 : 1, clientDir: '/nonexistent' });
  const url = await coord.listen();
  const vols: PoisonedVolunteer[] = [];
  const layout = sibling ? 'sibling' : 'alone';
  try {
    for (let i = 0; i < (sibling ? 4 : 3); i++) vols.push(await startPoisonedVolunteer(url, null, { name: `p${i}` }));
    await until(() => coord.scheduler.iteration >= 8 && (!sibling || [0, 1].every((s) => coord.stages.replicas(s).length === 2)), 'a norm history', 120_000);
    const target = coord.stages.replicas(stage)[0]!;
    const tab = vols.find((v) => v.status().volunteerId === target.id)!;
    tab.setPoison(mode);
    const it0 = coord.scheduler.iteration;
    const t0 = Date.now();
    const outcome = (): Detection | null => {
      const q = coord.events.list('quarantine').find((e) => e.data?.volunteer === target.id);
      const at = coord.scheduler.iteration - it0;
      if (q) return { mode, layout, outcome: 'expelled', iterations: at, how: 'quarantined' };
      if (!coord.stages.isReplica(target)) return { mode, layout, outcome: 'expelled', iterations: at, how: 'dropped' };
      if (coord.scheduler.probation.list().some((p) => p.volunteer === target.id)) return { mode, layout, outcome: 'probation', iterations: at, how: 'probation' };
      return null;
    };
    for (;;) {
      const d = outcome();
      if (d?.outcome === 'probation') {
        // An audit sibling may be placed for it and its retry audited there: watch a little longer.
        const stopAt = coord.scheduler.iteration + 3;
        const t1 = Date.now();
        while (coord.scheduler.iteration < stopAt && Date.now() - t1 < 30_000) {
          const e = outcome();
          if (e && e.outcome !== 'probation') return { ...e, how: `${e.how} after probation` };
          await sleep(20);
        }
      }
      if (d) return d;
      if (coord.scheduler.iteration - it0 >= budget || Date.now() - t0 > 180_000) return { mode, layout, outcome: 'missed', iterations: coord.scheduler.iteration - it0, how: '-' };
      await sleep(20);
    }
  } finally {
    for (const v of vols) v.kill();
    await coord.close();
  }
}

const per10k = (x: number, its: number) => (its > 0 ? fmt((x / its) * 10_000, 1) : '-');

const HELP = `Usage: npm run bench:screening -- [options]
  --quick                 9 of the configurations at 200 iterations (x each one's share)
  --iterations <n>        honest iterations per configuration, x its share (default 2000; 200 with --quick)
  --configs <a,b,...>     honest configurations to run (default all: ${CONFIGS.map((c) => c.name).join(', ')})
  --skip-honest           run only the poisoned part
  --skip-poisoned         run only the honest part
  --modes <a,b,...>       poisoned modes to run (default all: ${MODES.map((m) => m.mode).join(', ')})
  --budget <n>            iterations a poisoned tab is watched for (default 30)
Each honest configuration stops after 20 minutes. Prints quarantines per rule, suspicions, audit
verdicts and probations per configuration and per 10,000 iterations, then each poisoned mode's
outcome with and without a sibling.`;

async function main(): Promise<void> {
  if (process.argv.includes('--help')) {
    console.log(HELP);
    return;
  }
  const f = flags(process.argv.slice(2), { quick: 'boolean', iterations: 'string', configs: 'string', budget: 'string', 'skip-poisoned': 'boolean', 'skip-honest': 'boolean', modes: 'string' });
  const quick = f.quick === true;
  const iterations = Number(f.iterations ?? (quick ? 200 : 2000));
  const budget = Number(f.budget ?? 30);
  const names = list(f.configs, quick ? QUICK : CONFIGS.map((c) => c.name));
  console.log(`screening benchmark  ${new Date().toISOString()}  ${machine()}`);
  console.log(`honest: ${iterations} iterations per configuration (x its share), S+1 Node volunteers (one stage with a sibling), wasm; poisoned: tiny, 2 stages, batch 2, M=2, budget ${budget} iterations`);
  const cols = ['q:upstream', 'q:jump', 'q:grad', 'susp', 'match', 'mism', 'unver', 'prob'];
  if (f['skip-honest'] !== true) {
    const rows: (string | number)[][] = [];
    const total: Counts = Object.fromEntries([...cols, 'iterations'].map((k) => [k, 0]));
    let maxDiff = NaN;
    for (const name of names) {
      const c = CONFIGS.find((x) => x.name === name);
      if (!c) throw new Error(`unknown configuration ${name}; known: ${CONFIGS.map((x) => x.name).join(', ')}`);
      const its = Math.max(20, Math.round(iterations * (c.share ?? 1)));
      const r = await honestRun(c, its);
      for (const k of [...cols, 'iterations']) total[k]! += r[k]!;
      if (Number.isFinite(r.maxDiff)) maxDiff = Number.isFinite(maxDiff) ? Math.max(maxDiff, r.maxDiff) : r.maxDiff;
      const desc = `${c.preset} S${c.stages} seq${c.seqLen} b${c.batch} M${c.microbatches} ${c.recovery}${c.churnEvery ? ` churn/${c.churnEvery}` : ''}${c.rebuildAt !== undefined ? ` rebuild@${c.rebuildAt}` : ''}${c.replicaAt !== undefined ? ` +replica@${c.replicaAt}` : ''}`;
      rows.push([name, desc, r.iterations!, ...cols.map((k) => r[k]!), Number.isFinite(r.maxDiff) ? r.maxDiff.toExponential(1) : '-', fmt(r.seconds!, 0)]);
      console.log(`  done ${name}: ${r.iterations} iterations in ${fmt(r.seconds!, 0)} s; ${cols.map((k) => `${k} ${r[k]}`).join(', ')}`);
    }
    rows.push(['total', '', total.iterations!, ...cols.map((k) => total[k]!), Number.isFinite(maxDiff) ? maxDiff.toExponential(1) : '-', '']);
    rows.push(['per 10k', '', 10_000, ...cols.map((k) => per10k(total[k]!, total.iterations!)), '', '']);
    console.log('\nHonest swarms (counts; last row per 10,000 honest iterations)');
    console.log(table(['config', 'setting', 'its', ...cols, 'max diff', 's'], rows));
  }
  if (f['skip-poisoned'] !== true) {
    const det: Detection[] = [];
    const modes = list(f.modes, MODES.map((m) => m.mode));
    for (const { mode, stage } of MODES.filter((m) => modes.includes(m.mode))) {
      for (const sibling of [true, false]) {
        const d = await poisonedRun(mode, stage, sibling, budget);
        det.push(d);
        console.log(`  done ${d.mode} (${d.layout}): ${d.outcome} (${d.how}) after ${d.iterations} iterations`);
      }
    }
    console.log('\nPoisoned volunteers (one run each; expelled = quarantined or dropped; probation = suspected without a sibling: iteration dropped, not expelled)');
    console.log(table(['mode', 'stage has', 'outcome', 'how', 'iterations to it'], det.map((d) => [d.mode, d.layout, d.outcome, d.how, d.outcome === 'missed' ? `> ${d.iterations}` : d.iterations])));
    const caught = det.filter((d) => d.outcome !== 'missed').length;
    console.log(`detected (expelled or on probation): ${caught}/${det.length}; expelled: ${det.filter((d) => d.outcome === 'expelled').length}/${det.length}`);
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
