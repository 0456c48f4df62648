/**
 * Recovery benchmark: on a real local swarm (Coordinator + 4 Node volunteers on wasm + 1 spare,
 * all in this process), kill one stage's volunteer mid-iteration (NodeVolunteer.kill(): the
 * connection just drops, like a closed tab) and read the coordinator's recovery event.
 *
 *   npm run bench:recovery
 *   npm run bench:recovery -- --presets tiny --scenarios checkfree:2,checkfree+:0
 *   npm run bench:recovery -- --repeat 3
 *   npm run bench:recovery -- --trace        (print the coordinator's events around each kill)
 *
 * Scenarios are strategy:lostStage[@step]. The victim is killed when it receives its first
 * backward task of iteration 7 (microbatches in flight), or with @step when it receives that
 * iteration's step (the barrier: every microbatch done, step acks pending). Default: checkfree:2 (intermediate, average of neighbours),
 * checkfree+:0 (first stage: copy stage 1's blocks + embedding replica), checkfree+:2
 * (intermediate), none:2 (re-init from the seed), checkfree:0 (plain CheckFree on an edge stage:
 * falls back to re-init), plus checkpoint:2 and redundant:2 when the swarm supports them.
 *
 * Columns:
 *   detect s     kill -> the coordinator declares the stage lost (the grace period, graceMs, for
 *                a dropped transport: a tab may come back within it)
 *   recover s    recovery.done[].seconds: loss detected -> next completed iteration (fetch
 *                weights, rebuild, assign the spare, build the stage, run one full iteration)
 *   of it. s     that next iteration's own duration (recover s minus this = pure recovery work)
 *   lost its     completed iterations thrown away (checkpoint rolls back; the others lose only
 *                the partial iteration in flight)
 *   back s       kill -> the run completes the iteration it was at when the stage was lost
 *   moved        bytesMoved of the event (weights fetched from tabs + sent to the replacement)
 *   x stage      moved / bytes of the lost stage's weights
 *   upkeep/it    bytes the strategy moves every iteration while nothing fails (replicas, copies,
 *                checkpoints), averaged over the run
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Coordinator, DEFAULT_COORDINATOR } from '../coordinator/server.js';
import { startNodeVolunteer, type NodeVolunteer } from '../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, modelConfigOf, type RunSettings, type RecoveryStrategy } from '../shared/run-settings.js';
import { stageParamSpecs, sizeOf } from '../shared/model/params.js';
import { flags, fmt, fmtBytes, machine, median, table, loadLine } from './util.js';
import { until } from '../testing/until.js';

const KILL_AFTER = 6; // completed iterations before the kill (CheckFree+ replicas refresh at 5)
const AFTER = 2; // iterations to run past the one that was interrupted

interface Outcome {
  preset: string;
  scenario: string;
  method: string;
  fallback: boolean;
  detect: number;
  recover: number;
  iterAfter: number;
  lost: number;
  back: number;
  moved: number;
  stageBytes: number;
  upkeepPerIt: number;
  iterBefore: number;
  lossBefore: number | null;
  lossAfter: number | null;
  notes: string;
  trace: string[];
}

async function runScenario(
  preset: string,
  strategy: RecoveryStrategy,
  stage: number,
  at: 'backward' | 'step',
  base: Omit<RunSettings, 'preset' | 'recovery'>,
  graceMs: number,
  stepTimeoutMs: number,
): Promise<Outcome> {
  const settings: RunSettings = { ...base, preset, recovery: strategy };
  const ckdir = mkdtempSync(join(tmpdir(), 'bench-ckpt-'));
  const coord = new Coordinator({
    ...DEFAULT_COORDINATOR,
    maxReplicas: 1, // one tab per stage: extra tabs are spares (these tests exercise the strategy rung)
    settings,
    port: 0,
    silent: true,
    evalEvery: 0,
    graceMs,
    stepTimeoutMs,
    maxIterations: KILL_AFTER + AFTER,
    clientDir: '/nonexistent',
    recovery: { ...DEFAULT_COORDINATOR.recovery, checkpointDir: ckdir },
  });
  const url = await coord.listen();
  const vols: NodeVolunteer[] = [];
  try {
    for (let i = 0; i <= settings.stages; i++) vols.push(await startNodeVolunteer(url, { name: `r${i}` }));
    await until(() => vols.every((v) => v.status().volunteerId !== null) && coord.stages.owner(stage) !== undefined, 'assignments', 60_000);
    const owner = coord.stages.owner(stage)!;
    const victim = vols.find((v) => v.status().volunteerId === owner.id);
    if (!victim) throw new Error('victim volunteer not found');
    // The kill is triggered by the victim's own traffic, so it lands at the same point every run:
    // 'backward' = its first backward task of iteration KILL_AFTER (microbatches in flight);
    // 'step' = the step barrier of that iteration (all microbatches done, acks pending).
    let killedAt = 0;
    const kill = () => {
      if (killedAt) return;
      killedAt = Date.now();
      victim.kill();
    };
    if (at === 'step') victim.socket.on('step', (info) => void (info.iteration === KILL_AFTER && kill()));
    else victim.socket.on('task', (meta) => void (meta.iteration === KILL_AFTER && meta.dir === 'B' && kill()));
    await until(() => killedAt > 0, `the kill in iteration ${KILL_AFTER}`, 30 * 60_000);
    const iterBefore = median(coord.scheduler.history.slice(1).map((h) => h.seconds));
    await until(() => coord.recovery.done.length >= 1, 'the recovery event', 30 * 60_000);
    const ev = coord.recovery.done[0]!;
    const firstAfter = coord.scheduler.history.find((h) => h.time >= ev.detectedAt)!;
    await until(
      () => coord.scheduler.history.some((h) => h.time >= ev.detectedAt && h.iteration === ev.iteration + 1),
      'progress regained',
      30 * 60_000,
    );
    const back = coord.scheduler.history.find((h) => h.time >= ev.detectedAt && h.iteration === ev.iteration + 1)!;
    await until(() => coord.scheduler.iteration >= KILL_AFTER + AFTER, 'the remaining iterations', 30 * 60_000);
    const completed = coord.scheduler.history.length;
    // Upkeep between failures: CheckFree+'s embedding/head replicas, redundant copies, checkpoints.
    const metricsText = await coord.metrics.text();
    const bytesOf = (kind: string) => Number(new RegExp(`swarm_recovery_bytes_total\\{kind="${kind}"\\} (\\d+(?:\\.\\d+)?(?:e\\+\\d+)?)`).exec(metricsText)?.[1] ?? 0);
    const upkeep = bytesOf('replica') + bytesOf('redundant') + bytesOf('checkpoint');
    const cfg = modelConfigOf(settings);
    const stageBytes = stageParamSpecs(cfg, stage).reduce((a, s) => a + sizeOf(s.shape) * 4, 0);
    return {
      preset,
      scenario: `${strategy}:${stage}${at === 'step' ? '@step' : ''}`,
      method: ev.method,
      fallback: ev.fallback,
      detect: (ev.detectedAt - killedAt) / 1000,
      recover: ev.seconds ?? NaN,
      iterAfter: firstAfter.seconds,
      lost: Math.max(0, ev.iteration - firstAfter.iteration + 1),
      back: (back.time - killedAt) / 1000,
      moved: ev.bytesMoved,
      stageBytes,
      upkeepPerIt: upkeep / Math.max(1, completed),
      iterBefore,
      lossBefore: ev.lossBefore,
      lossAfter: ev.lossAfter,
      notes: ev.notes.join('; '),
      trace: coord.events
        .list()
        .filter((e) => e.time >= killedAt - 1500)
        .map((e) => `${fmt((e.time - killedAt) / 1000, 2).padStart(7)} s  ${e.kind}: ${e.message}`),
    };
  } finally {
    for (const v of vols) v.kill();
    await coord.close();
    rmSync(ckdir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const defaults = ['checkfree:2', 'checkfree+:0', 'checkfree+:2', 'none:2', 'checkfree:0', 'checkpoint:2', 'redundant:2'];
  const f = flags(process.argv.slice(2), { trace: 'boolean', presets: 'string', scenarios: 'string', repeat: 'string', microbatches: 'string', batch: 'string', grace: 'string', 'step-timeout': 'string' });
  const stepTimeoutMs = Number(f['step-timeout'] ?? DEFAULT_COORDINATOR.stepTimeoutMs);
  const presets = String(f.presets ?? 'tiny,small').split(',');
  const scenarios = typeof f.scenarios === 'string' ? f.scenarios.split(',') : defaults;
  const repeat = Number(f.repeat ?? 1);
  const graceMs = Number(f.grace ?? DEFAULT_COORDINATOR.graceMs);
  const base = { ...DEFAULT_SETTINGS, stages: 4, microbatches: Number(f.microbatches ?? 2), batch: Number(f.batch ?? 2), seqLen: undefined };
  console.log(`recovery benchmark  ${new Date().toISOString()}  ${machine()}`);
  console.log(
    `S=${base.stages} stages + 1 spare, M=${base.microbatches} x batch ${base.batch}, wasm, all volunteers in this process; ` +
      `kill at the victim's first backward task of iteration ${KILL_AFTER + 1} (@step: at its step barrier); graceMs ${graceMs}, stepTimeoutMs ${stepTimeoutMs}; ${repeat} run(s) per scenario (medians)`,
  );
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const preset of presets) {
    const cfg = modelConfigOf({ ...base, preset, recovery: 'none' });
    console.log(`  ${preset}: dModel ${cfg.dModel}, ${cfg.nLayers} layers (${cfg.layersPerStage}/stage), seqLen ${cfg.seqLen}`);
    for (const sc of scenarios) {
      const [strategy, rest] = sc.split(':') as [RecoveryStrategy, string];
      const [st, at] = rest.split('@');
      const runs: Outcome[] = [];
      for (let r = 0; r < repeat; r++) {
        try {
          runs.push(await runScenario(preset, strategy, Number(st), at === 'step' ? 'step' : 'backward', base, graceMs, stepTimeoutMs));
        } catch (e) {
          notes.push(`${preset} ${sc}: FAILED (${(e as Error).message})`);
        }
      }
      if (!runs.length) {
        rows.push([preset, sc, 'failed', '', '', '', '', '', '', '', '', '', '', '']);
        continue;
      }
      const m = (k: keyof Outcome) => median(runs.map((o) => o[k] as number));
      const o = runs[0]!;
      rows.push([
        preset,
        sc,
        `${o.method}${o.fallback ? ' (fallback)' : ''}`,
        fmt(m('iterBefore'), 2),
        fmt(m('detect'), 2),
        fmt(m('recover'), 2),
        fmt(m('iterAfter'), 2),
        fmt(m('recover') - m('iterAfter'), 2),
        String(m('lost')),
        fmt(m('back'), 2),
        fmtBytes(m('moved')),
        fmt(m('moved') / o.stageBytes, 2),
        fmtBytes(m('upkeepPerIt')),
        `${fmt(o.lossBefore ?? NaN, 3)} -> ${fmt(o.lossAfter ?? NaN, 3)}`,
      ]);
      if (o.notes) notes.push(`${preset} ${sc}: ${o.notes}`);
      if (f.trace) for (const x of runs) console.log(`  trace ${preset} ${sc} (coordinator events, time from the kill):\n    ${x.trace.join('\n    ')}`);
      console.log(`  done ${preset} ${sc}`);
    }
  }
  console.log('');
  console.log(
    table(
      ['preset', 'scenario', 'method', 'iter s', 'detect s', 'recover s', 'of it. s', 'work s', 'lost its', 'back s', 'moved', 'x stage', 'upkeep/it', 'loss before -> after'],
      rows,
    ),
  );
  console.log('work s = recover s - of it. s (fetch + rebuild + assign + build, without the re-run iteration)');
  if (notes.length) console.log(`\nnotes:\n  ${notes.join('\n  ')}`);
  console.log(`end: ${loadLine()}`);
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
