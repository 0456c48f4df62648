/**
 * Quality and traffic of `--dp diloco` against `--dp exact` (issue 21; docs/data-parallel.md).
 *
 * 1. Loss: the local trainer (the swarm's reference) with R replicas of every stage, trained in
 *    exact mode and in diloco mode for several sync intervals H, for several seeds (each seed sets
 *    the initial weights and the data order); validation loss against tokens seen, mean and sd
 *    over seeds, side by side, and the gap of each mode's seed-mean to exact's. Every mode sees the
 *    same tokens per iteration (the replicas split the microbatches), so equal iterations are equal
 *    tokens. Validation reads replica 0; every validation point is a multiple of every H asked
 *    for, so diloco is validated right after a sync.
 * 2. Bytes per replica-iteration through the coordinator for a preset's stages (default base):
 *    exact moves the stage's gradient up and the sum down every iteration as float32 bundles
 *    (coordinator/gradient-reduction.ts); diloco moves the pseudo-gradient up and the mean down
 *    once every H iterations as int8 chunk frames. Formula and an actual encode, side by side.
 *
 *   npm run bench:diloco-quality                           (tiny, R=2, 100 iterations, H 5,10,20, 3 seeds)
 *   npm run bench:diloco-quality -- --steps 300 --every 10,20,50 --seeds 1,2,3,4,5
 *   npm run bench:diloco-quality -- --every 20 --outer 1/0,0.7/0.9   (several outer lr/momentum settings, one exact)
 *   npm run bench:diloco-quality -- --every 4 --streaming 1/0,4/0,4/1   (Streaming DiLoCo: fragments / overlap)
 *   npm run bench:diloco-quality -- --every 20 --outer 1/0 --warmup 0,10,20   (a synced warm-up before diloco)
 *   npm run bench:diloco-quality -- --every 20 --outer 1/0 --warmup 5 --inner-lr-scale 1,sqrt,inv,0.85   (the replicas' inner lr)
 *   npm run bench:diloco-quality -- --steps 0               (bytes only)
 */
import { trainLocal, type LocalTrainResult } from '../trainer/cli.js';
import { useNodeBackend } from '../trainer/node-backend.js';
import { DEFAULT_SETTINGS, modelConfigOf, type RunSettings } from '../shared/run-settings.js';
import { DEFAULT_DP, type DpSettings } from '../shared/dp/dp-settings.js';
import { stageParamSpecs, sizeOf } from '../shared/model/params.js';
import { flatLength } from '../shared/dp/flat-weights.js';
import { syncBytes, syncChunks, SYNC_CHUNK_VALUES } from '../shared/dp/sync-chunks.js';
import { DilocoReplica } from '../shared/dp/diloco-replica.js';
import { DilocoSyncSession } from '../shared/dp/diloco-sync-session.js';
import { encodeWeights } from '../shared/protocol/index.js';
import { INT8_BLOCK_SIZE } from '../shared/protocol/quantize.js';
import { WIRE_ENCODINGS, type WireEncoding } from '../shared/protocol/wire-encoding.js';
import type { SyncReport } from '../trainer/replicated-pipeline.js';
import { flags, fmt, fmtBytes, list, machine, mean, table } from './util.js';

const HELP = `Usage: npm run bench:diloco-quality -- [options]
  --preset <p>          model trained (default tiny)
  --replicas <n>        replicas of every stage (default 2)
  --steps <n>           iterations per run (default 100; 0 = bytes only)
  --every <h,...>       diloco sync intervals H (default 5,10,20)
  --seeds <s,...>       seeds (default 1234,1,2)
  --dp-wire <w>         pseudo-gradient encoding (default ${DEFAULT_DP.wire}; ${WIRE_ENCODINGS.join('|')})
  --outer-lr <x>, --outer-momentum <x>   (default ${DEFAULT_DP.outerLr}, ${DEFAULT_DP.outerMomentum})
  --outer <lr/m,...>    several outer (lr/momentum) settings in one run, exact trained once (overrides the two above)
  --warmup <W,...>      diloco: the first W iterations sync every iteration, then every H (default 0; several: one mode each)
  --inner-lr-scale <s,...>  diloco: the replicas' inner (Adam) lr is --lr x s, exact keeps --lr (default 1; several: one mode each;
                        sqrt = 1/sqrt(R), inv = 1/R: each replica steps on 1/R of the iteration's microbatches)
  --streaming <F/tau[/merge],...>  Streaming DiLoCo fragments / overlap (/ mix|delta) for every diloco mode (default 1/0 = plain DiLoCo)
  --stages, --microbatches, --batch, --seq, --lr   (default 4, 4, 2, 32, 3e-3)
  --eval-every <n>      validation interval (default: the least common multiple of the H values, at least 20)
  --eval-batches <n>    validation batches (default 8)
  --bytes-preset <p>    preset whose traffic is computed (default base)
  -h, --help            this text
`;

const sd = (xs: number[]) => (xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1)) : NaN);
const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const B = (n: number) => `${n.toLocaleString('en-US')} B`;
const pct = (x: number) => `${x >= 0 ? '+' : ''}${fmt(x * 100, 2)}%`;

interface Mode {
  name: string;
  dp: Partial<DpSettings>;
  /** The replicas' inner lr as a multiple of --lr (1 for exact). */
  lrScale: number;
}

/** Bytes per replica-iteration of both modes for every stage of `preset`, formula and actual encode. */
function bytesStudy(preset: string, stages: number, everies: number[], wire: WireEncoding): void {
  const cfg = modelConfigOf({ ...DEFAULT_SETTINGS, preset, stages });
  console.log(`\nbytes through the coordinator per replica-iteration, preset ${preset} (d ${cfg.dModel}, ${cfg.nLayers} layers), ${stages} stages`);
  console.log(
    `  exact:  gradient up + sum down every iteration, float32 bundles: 2 x 4 P (+ the bundles' JSON headers)\n` +
      `  diloco: pseudo-gradient up + mean down every H iterations, ${wire} chunk frames of ${SYNC_CHUNK_VALUES} values: ` +
      `2 x (P${wire === 'int8' ? ` + 4 ceil(P/${INT8_BLOCK_SIZE})` : wire === 'f16' ? ' x 2' : ' x 4'} + 32 per chunk) / H`,
  );
  const rows: string[][] = [];
  for (let s = 0; s < stages; s++) {
    const specs = stageParamSpecs(cfg, s);
    const P = flatLength(specs);
    // exact: the formula (4 bytes per value) against an actual encode of a gradient bundle
    const grads = Object.fromEntries(specs.map((sp) => [sp.name, new Float32Array(sizeOf(sp.shape)).fill(1e-3)]));
    const exactActual = 2 * encodeWeights(grads).byteLength;
    const exactFormula = 2 * 4 * P;
    // diloco: the formula against an actual upload of a pseudo-gradient of this size
    const nChunks = syncChunks(P).length;
    const perValue = wire === 'int8' ? 1 : wire === 'f16' ? 2 : 4;
    const scales = wire === 'int8' ? syncChunks(P).reduce((n, c) => n + 4 * Math.ceil(c.count / INT8_BLOCK_SIZE) + 8, 0) : 0;
    const syncFormula = 2 * (perValue * P + scales + 24 * nChunks); // frame header 20 + shape 4
    const rep = DilocoReplica.start(s, new Float32Array(P), { lr: 0.7, momentum: 0.9, wire });
    const cur = new Float32Array(P);
    for (let i = 0; i < P; i++) cur[i] = Math.sin(i) * 1e-3;
    const session = new DilocoSyncSession(rep, 0, cur);
    let up = 0;
    for (let k = 0; k < session.chunkCount; k++) up += session.uplink(k).byteLength;
    const syncActual = 2 * up; // the mean comes back in the same encoding and chunking
    if (syncActual !== 2 * syncBytes(P, wire)) throw new Error(`stage ${s}: actual sync ${syncActual} B, syncBytes says ${2 * syncBytes(P, wire)}`);
    rows.push([
      String(s),
      `${(P / 1e6).toFixed(2)} M`,
      B(exactFormula),
      B(exactActual),
      B(syncFormula),
      B(syncActual),
      ...everies.map((h) => `${fmtBytes(syncActual / h)} (1/${fmt(exactActual / (syncActual / h), 0)})`),
    ]);
  }
  console.log(table(['stage', 'params P', 'exact formula', 'exact actual encode', 'one sync formula', 'one sync actual encode', ...everies.map((h) => `diloco H=${h} (vs exact)`)], rows));
}

async function main(): Promise<void> {
  const f = flags(process.argv.slice(2), {
    preset: 'string',
    replicas: 'string',
    steps: 'string',
    every: 'string',
    seeds: 'string',
    'dp-wire': 'string',
    'outer-lr': 'string',
    'outer-momentum': 'string',
    outer: 'string',
    stages: 'string',
    microbatches: 'string',
    batch: 'string',
    seq: 'string',
    lr: 'string',
    'eval-every': 'string',
    'eval-batches': 'string',
    'bytes-preset': 'string',
    streaming: 'string',
    warmup: 'string',
    'inner-lr-scale': 'string',
    help: 'boolean',
  });
  if (f.help) return void process.stdout.write(HELP);
  const everies = list(f.every, ['5', '10', '20']).map(Number);
  const seeds = list(f.seeds, ['1234', '1', '2']).map(Number);
  const steps = Number(f.steps ?? 100);
  const R = Number(f.replicas ?? 2);
  const wire = String(f['dp-wire'] ?? DEFAULT_DP.wire) as WireEncoding;
  const settings: RunSettings = {
    ...DEFAULT_SETTINGS,
    preset: String(f.preset ?? 'tiny'),
    stages: Number(f.stages ?? 4),
    microbatches: Number(f.microbatches ?? 4),
    batch: Number(f.batch ?? 2),
    seqLen: Number(f.seq ?? 32),
    lr: Number(f.lr ?? DEFAULT_SETTINGS.lr),
    recovery: 'checkfree',
  };
  const outer = { outerLr: Number(f['outer-lr'] ?? DEFAULT_DP.outerLr), outerMomentum: Number(f['outer-momentum'] ?? DEFAULT_DP.outerMomentum), wire };
  const outers = f.outer
    ? list(f.outer, []).map((o) => {
        const [lr, m] = o.split('/').map(Number);
        if (!(lr! > 0) || !(m! >= 0 && m! < 1)) throw new Error(`--outer: expected lr/momentum pairs like 1/0,0.7/0.9, got "${o}"`);
        return { outerLr: lr!, outerMomentum: m!, wire };
      })
    : [outer];
  const streams = list(f.streaming, ['1/0']).map((o) => {
    const [fragments, overlap] = o.split('/').map(Number);
    const merge = (o.split('/')[2] ?? 'mix') as 'mix' | 'delta';
    if (!Number.isInteger(fragments) || !Number.isInteger(overlap) || !['mix', 'delta'].includes(merge)) throw new Error(`--streaming: expected F/tau[/mix|delta] like 1/0,4/1,4/1/delta, got "${o}"`);
    return { fragments: fragments!, overlap: overlap!, merge };
  });
  const warmups = list(f.warmup, ['0']).map((w) => {
    if (!/^\d+$/.test(w)) throw new Error(`--warmup: expected iteration counts like 0,10,20, got "${w}"`);
    return Number(w);
  });
  const innerScales = list(f['inner-lr-scale'], ['1']).map((x) => {
    const v = x === 'sqrt' ? 1 / Math.sqrt(R) : x === 'inv' ? 1 / R : Number(x);
    if (!(v > 0 && v <= 4)) throw new Error(`--inner-lr-scale: expected factors in (0, 4] or sqrt|inv, got "${x}"`);
    return { label: x, scale: v };
  });
  const scaleName = (sc: { label: string; scale: number }) => (innerScales.length > 1 || sc.scale !== 1 ? ` lr x${sc.label === 'sqrt' ? '1/sqrt(R)' : sc.label === 'inv' ? '1/R' : sc.label}` : '');
  const warmName = (w: number) => (warmups.length > 1 || w > 0 ? ` W=${w}` : '');
  const streamName = (st: { fragments: number; overlap: number; merge: string }) => (streams.length > 1 || st.fragments > 1 || st.overlap > 0 ? ` F=${st.fragments} tau=${st.overlap}${st.overlap > 0 ? ` ${st.merge}` : ''}` : '');
  const lcm = everies.reduce((a, b) => (a * b) / gcd(a, b), 1);
  const evalEvery = Number(f['eval-every'] ?? lcm * Math.ceil(20 / lcm));
  const evalBatches = Number(f['eval-batches'] ?? 8);
  console.log(`diloco quality study  ${new Date().toISOString()}  ${machine()}`);

  if (steps > 0) {
    await useNodeBackend('wasm');
    const cfg = modelConfigOf(settings);
    const tokensPerIt = settings.microbatches * settings.batch * cfg.seqLen;
    console.log(
      `preset ${settings.preset} (d ${cfg.dModel}, ${cfg.nLayers} layers), ${settings.stages} stages x ${R} replicas, ${settings.microbatches} microbatches x batch ${settings.batch} x seq ${cfg.seqLen} ` +
        `(${tokensPerIt} tokens per iteration, split over the replicas), lr ${settings.lr}, ${steps} iterations, seeds ${seeds.join(', ')}; ` +
        `diloco: outer lr/momentum ${outers.map((o) => `${o.outerLr}/${o.outerMomentum}`).join(', ')}, pseudo-gradients ${wire}, inner lr x ${innerScales.map((sc) => fmt(sc.scale, 4)).join(', ')}; validation on ${evalBatches} batches every ${evalEvery} iterations`,
    );
    const modes: Mode[] = [
      { name: 'exact', dp: { mode: 'exact' }, lrScale: 1 },
      ...outers.flatMap((o) =>
        everies.flatMap((h) =>
          streams.flatMap((st) =>
            warmups.flatMap((w) =>
              innerScales.map((sc) => ({
                name: (outers.length > 1 ? `diloco H=${h} ${o.outerLr}/${o.outerMomentum}` : `diloco H=${h}`) + streamName(st) + warmName(w) + scaleName(sc),
                dp: { mode: 'diloco' as const, every: h, ...o, ...st, warmup: w },
                lrScale: sc.scale,
              })),
            ),
          ),
        ),
      ),
    ];
    const runs = new Map<string, LocalTrainResult[]>();
    const syncs = new Map<string, SyncReport[]>();
    for (const m of modes) {
      runs.set(m.name, []);
      syncs.set(m.name, []);
      for (const seed of seeds) {
        const t0 = Date.now();
        const r = await trainLocal({ ...settings, lr: settings.lr * m.lrScale, seed, steps, evalEvery, evalBatches, swap: false, replicas: R, dp: m.dp, onSync: (_, rep) => syncs.get(m.name)!.push(rep) });
        runs.get(m.name)!.push(r);
        console.log(`  ${m.name.padEnd(outers.length > 1 || warmups.length > 1 || innerScales.length > 1 ? 36 : streams.length > 1 ? 28 : 12)} seed ${String(seed).padEnd(5)} val ${fmt(r.initialValLoss, 4)} -> ${fmt(r.finalValLoss, 4)}  (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
      }
    }
    const points = runs.get('exact')![0]!.valLosses.map((v) => v.step);
    const at = (name: string, i: number) => runs.get(name)!.map((r) => r.valLosses[i]!.loss);
    console.log(`\nvalidation loss (mean ± sd over ${seeds.length} seeds) against tokens seen:`);
    console.log(
      table(
        ['mode', ...points.map((p) => `${p * tokensPerIt} tok (it ${p})`)],
        modes.map((m) => [m.name, ...points.map((_, i) => `${fmt(mean(at(m.name, i)), 4)} ± ${fmt(sd(at(m.name, i)), 4)}`)]),
      ),
    );
    const last = points.length - 1;
    const ref = mean(at('exact', last));
    console.log(`\nat ${points[last]! * tokensPerIt} tokens (iteration ${points[last]}):`);
    console.log(
      table(
        ['mode', 'val loss mean', 'sd', 'vs exact (seed means)', 'per-seed gap mean', 'per-seed gap sd', 'within 2%', 'pseudo-grad drift', 'int8 uplink rel. error'],
        modes.map((m) => {
          const gaps = runs.get(m.name)!.map((r, k) => (r.finalValLoss - runs.get('exact')![k]!.finalValLoss) / runs.get('exact')![k]!.finalValLoss);
          const reps = syncs.get(m.name)!;
          return [
            m.name,
            fmt(mean(at(m.name, last)), 4),
            fmt(sd(at(m.name, last)), 4),
            pct((mean(at(m.name, last)) - ref) / ref),
            pct(mean(gaps)),
            fmt(sd(gaps) * 100, 2) + '%',
            Math.abs(mean(at(m.name, last)) - ref) / ref <= 0.02 ? 'yes' : 'no',
            reps.length ? fmt(mean(reps.flatMap((r) => r.drift)), 3) : '-',
            reps.length ? mean(reps.flatMap((r) => r.uplinkError)).toExponential(2) : '-',
          ];
        }),
      ),
    );
  }
  bytesStudy(String(f['bytes-preset'] ?? 'base'), settings.stages, everies, wire);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
