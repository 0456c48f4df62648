/**
 * tfjs backends in Node: wasm (XNNPACK, SIMD) vs cpu (plain JavaScript), on the work a Node
 * volunteer does: one pipeline stage's forward + backward (tiny preset, as the tests run it) and
 * a 256x256 matmul. Justifies wasm as the Node default (trainer/node-backend.ts).
 *
 *   npm run bench:backends
 *   npm run bench:backends -- --preset small --reps 5
 *
 * Both backends in one process, alternating order over rounds; each measurement builds its
 * stage on the backend being measured, warms up, then times `reps` repetitions, reading every
 * result back (dataSync) so asynchronous backends cannot hide work.
 */
import * as tf from '../shared/model/tf.js';
import { Stage } from '../shared/model/stage.js';
import { useNodeBackend, NODE_BACKENDS, type NodeBackend } from '../trainer/node-backend.js';
import { DEFAULT_SETTINGS, modelConfigOf } from '../shared/run-settings.js';
import { flags, fmt, machine, median, table, loadLine } from './util.js';

interface Case {
  name: string;
  reps: number;
  /** Returns ms per repetition. */
  run: (reps: number) => number;
}

function stageCase(preset: string, stages: number, index: number, batch: number, reps: number): Case {
  const cfg = modelConfigOf({ ...DEFAULT_SETTINGS, preset, stages });
  const isLast = index === stages - 1;
  const isFirst = index === 0;
  const parts = [isFirst ? 'embed' : null, `${cfg.layersPerStage} block(s)`, isLast ? 'head+loss' : null].filter(Boolean).join('+');
  return {
    name: `${preset} stage ${index}/${stages} F+B (${parts}), batch ${batch}x${cfg.seqLen}`,
    reps,
    run: (n) => {
      const stage = new Stage(cfg, index, { lr: 1e-3 });
      const B = batch;
      const T = cfg.seqLen;
      const x = isFirst ? tf.randomUniform([B, T], 0, cfg.vocabSize, 'int32') : tf.randomNormal([B, T, cfg.dModel]);
      const y = isLast ? tf.randomUniform([B, T], 0, cfg.vocabSize, 'int32') : undefined;
      const dy = isLast ? null : tf.randomNormal([B, T, cfg.dModel]);
      const once = (k: number) => {
        const out = stage.forward(`k${k}`, x, stage.fullSegment(), y);
        out.dataSync();
        out.dispose();
        const dx = stage.backward(`k${k}`, dy ?? 1);
        dx?.dataSync();
        dx?.dispose();
      };
      for (let k = 0; k < 2; k++) once(-1 - k);
      const t0 = performance.now();
      for (let k = 0; k < n; k++) once(k);
      const ms = (performance.now() - t0) / n;
      stage.dispose();
      tf.dispose([x, ...(y ? [y] : []), ...(dy ? [dy] : [])]);
      return ms;
    },
  };
}

function matmulCase(size: number, reps: number): Case {
  return {
    name: `matmul ${size}x${size} @ ${size}x${size}`,
    reps,
    run: (n) => {
      const a = tf.randomNormal([size, size]);
      const b = tf.randomNormal([size, size]);
      for (let k = 0; k < 3; k++) tf.tidy(() => tf.matMul(a, b).dataSync());
      const t0 = performance.now();
      for (let k = 0; k < n; k++) tf.tidy(() => tf.matMul(a, b).dataSync());
      const ms = (performance.now() - t0) / n;
      tf.dispose([a, b]);
      return ms;
    },
  };
}

async function main(): Promise<void> {
  const f = flags(process.argv.slice(2), { preset: 'string', reps: 'string', rounds: 'string' });
  const preset = String(f.preset ?? 'tiny');
  const repsScale = f.reps ? Number(f.reps) / 10 : 1;
  const rounds = Number(f.rounds ?? 2);
  const batch = DEFAULT_SETTINGS.batch;
  const cases: Case[] = [
    stageCase(preset, 4, 1, batch, Math.max(1, Math.round(10 * repsScale))),
    stageCase(preset, 4, 3, batch, Math.max(1, Math.round(10 * repsScale))),
    matmulCase(256, Math.max(1, Math.round(50 * repsScale))),
  ];
  console.log(`backends benchmark  ${new Date().toISOString()}  ${machine()}`);
  console.log(`tfjs ${tf.version_core}; ${rounds} rounds, alternating backend order; ms per repetition (median over rounds)`);
  const ms = new Map<string, number[]>();
  const order: NodeBackend[] = [...NODE_BACKENDS];
  for (let r = 0; r < rounds; r++) {
    for (const be of r % 2 === 0 ? order : [...order].reverse()) {
      await useNodeBackend(be);
      for (const c of cases) {
        // The cpu backend is slow: fewer reps there keep the run short (per-rep time is what counts).
        const n = be === 'cpu' ? Math.max(1, Math.ceil(c.reps / 3)) : c.reps;
        const key = `${c.name}|${be}`;
        ms.set(key, [...(ms.get(key) ?? []), c.run(n)]);
      }
    }
  }
  const rows = cases.map((c) => {
    const w = median(ms.get(`${c.name}|wasm`)!);
    const p = median(ms.get(`${c.name}|cpu`)!);
    return [c.name, fmt(w, 2), fmt(p, 2), `${fmt(p / w, 1)}x`];
  });
  console.log(table(['workload', 'wasm ms', 'cpu ms', 'cpu / wasm'], rows));
  const wasmThreads = (tf.env().getFlags() as Record<string, unknown>)['WASM_HAS_MULTITHREAD_SUPPORT'];
  console.log(`wasm: SIMD ${String(tf.env().getBool('WASM_HAS_SIMD_SUPPORT'))}, multithread ${String(wasmThreads ?? 'n/a')}`);
  console.log(`end: ${loadLine()}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
