/**
 * One backend's share of `bench:compute`, free of Node APIs so that the Chromium variant
 * (bench/compute-browser.ts) runs the very same code in a Web Worker: the backend's matmul rate
 * on each preset's shapes, then forward / backward / step of each stage position and backward
 * mode, alternating the order of the modes over rounds. Formats the two tables it measured.
 */
import * as tf from '../shared/model/tf.js';
import { configForStages, getPreset } from '../shared/model/config.js';
import type { BackwardMode } from '../shared/model/stage.js';
import { measureMatmul, measureRate, measureStage, stageFlops, type StageTiming } from '../shared/model/roofline.js';

export const POSITIONS = { first: (_s: number) => 0, middle: (_s: number) => 1, last: (s: number) => s - 1 } as const;
export type Position = keyof typeof POSITIONS;

export interface RunOptions {
  presets: string[];
  positions: Position[];
  modes: BackwardMode[];
  batch: number;
  stages: number;
  /** Timed repetitions; default per preset (tiny 5, small 3, base 1). */
  reps?: number;
  /** Rounds alternating the order of modes; default 2 (base 1). */
  rounds?: number;
}

export interface StageRow {
  preset: string;
  position: Position;
  index: number;
  mode: BackwardMode;
  timing: StageTiming;
  /** Matmul FLOPs of one forward + backward. */
  flops: number;
  /** The backend's rate on the stage's [B*T, d] x [d, 4d] product (GFLOP/s). */
  matmulGflops: number;
}

export interface BackendResult {
  /** [preset, product, GFLOP/s] */
  matmul: string[][];
  stages: StageRow[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
}

function fmt(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '-';
}

/** Measures every preset on the current backend. `log` hears progress. */
export async function runBackend(o: RunOptions, log: (line: string) => void = () => {}): Promise<BackendResult> {
  const matmul: string[][] = [];
  const stages: StageRow[] = [];
  for (const preset of o.presets) {
    const cfg = configForStages(getPreset(preset), o.stages);
    const reps = o.reps ?? (preset === 'tiny' ? 5 : preset === 'small' ? 3 : 1);
    const rounds = o.rounds ?? (preset === 'base' ? 1 : 2);
    const N = o.batch * cfg.seqLen;
    const D = cfg.dModel;
    const F = cfg.ffHidden;
    const BH = o.batch * cfg.nHeads;
    const K = D / cfg.nHeads;
    const T = cfg.seqLen;
    const mmReps = Math.max(3, reps);
    log(`${preset}: matmul rates`);
    // The reference: the stage's [B*T, d] x [d, 4d] product, measured before and after its runs.
    const reference = () => measureMatmul(N, D, F, { reps: mmReps });
    const before = await reference();
    const rows: string[][] = [
      [preset, `[${N},${F}]x[${D},${F}]^T (dX)`, fmt(await measureMatmul(N, F, D, { reps: mmReps, transposeB: true }), 2)],
      [preset, `[${N},${D}]^T x[${N},${F}] (dW)`, fmt(await measureMatmul(D, N, F, { reps: mmReps, transposeA: true }), 2)],
      [preset, `[${BH},${T},${K}]x[${BH},${K},${T}] batched, tf.matMul (attention)`, fmt(await batched(BH, T, K, mmReps), 2)],
      [preset, `[${N},${F}]x[${D},${F}]^T, tf.matMul's transpose flag`, fmt(await flagged(N, F, D, mmReps), 2)],
    ];
    const timings = new Map<string, StageTiming[]>();
    for (const position of o.positions) {
      const index = POSITIONS[position](o.stages);
      for (let r = 0; r < rounds; r++) {
        for (const mode of r % 2 === 0 ? o.modes : [...o.modes].reverse()) {
          log(`${preset}: stage ${index} (${position}), ${mode}, round ${r + 1}/${rounds}`);
          const t = await measureStage(cfg, index, { batch: o.batch, reps, backward: mode });
          const key = `${position}|${mode}`;
          timings.set(key, [...(timings.get(key) ?? []), t]);
        }
      }
    }
    const after = await reference();
    const rate = median([before, after]);
    matmul.push([preset, `[${N},${D}]x[${D},${F}] (the reference; before / after)`, `${fmt(before, 2)} / ${fmt(after, 2)}`], ...rows);
    for (const position of o.positions) {
      const index = POSITIONS[position](o.stages);
      const fl = stageFlops(cfg, index, o.batch);
      for (const mode of o.modes) {
        const ts = timings.get(`${position}|${mode}`)!;
        stages.push({
          preset,
          position,
          index,
          mode,
          flops: fl.forward + fl.backward,
          matmulGflops: rate,
          timing: {
            forwardMs: median(ts.map((t) => t.forwardMs)),
            backwardMs: median(ts.map((t) => t.backwardMs)),
            stepMs: median(ts.map((t) => t.stepMs)),
            stashBytes: ts[0]!.stashBytes,
            peakBytes: ts[0]!.peakBytes,
          },
        });
      }
    }
  }
  return { matmul, stages };
}

/** GFLOP/s of the batched product attention's scores use ([BH,T,K] x [BH,K,T]), straight tf.matMul. */
async function batched(bh: number, T: number, K: number, reps: number): Promise<number> {
  const a = tf.randomNormal([bh, T, K]);
  const b = tf.randomNormal([bh, K, T]);
  try {
    return await measureRate(() => tf.matMul(a, b), 2 * bh * T * T * K, reps);
  } finally {
    tf.dispose([a, b]);
  }
}

/** GFLOP/s of tf.matMul with transposeB = true (what tf.grads' matmul gradient calls). */
async function flagged(m: number, k: number, n: number, reps: number): Promise<number> {
  const a = tf.randomNormal([m, k]);
  const b = tf.randomNormal([n, k]);
  try {
    return await measureRate(() => tf.matMul(a, b, false, true), 2 * m * k * n, reps);
  } finally {
    tf.dispose([a, b]);
  }
}

function bytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / 1024 / 1024).toFixed(2)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

/** The stage table's header and rows. */
export function stageTable(rows: StageRow[]): { headers: string[]; rows: string[][] } {
  return {
    headers: ['preset', 'stage', 'backward', 'fwd ms', 'bwd ms', 'bwd/fwd', 'step ms', 'GFLOP F+B', 'GFLOP/s', 'mm GFLOP/s', 'ratio', 'stash / mb', 'peak F+B'],
    rows: rows.map((r) => {
      const ms = r.timing.forwardMs + r.timing.backwardMs;
      const achieved = r.flops / ms / 1e6;
      return [
        r.preset,
        `${r.position} (${r.index})`,
        r.mode,
        fmt(r.timing.forwardMs, 1),
        fmt(r.timing.backwardMs, 1),
        `${fmt(r.timing.backwardMs / r.timing.forwardMs, 2)}x`,
        fmt(r.timing.stepMs, 1),
        fmt(r.flops / 1e9, 3),
        fmt(achieved, 2),
        fmt(r.matmulGflops, 2),
        fmt(achieved / r.matmulGflops, 2),
        bytes(r.timing.stashBytes),
        bytes(r.timing.peakBytes),
      ];
    }),
  };
}

export const TABLE_NOTES = {
  matmul: "matmul GFLOP/s on the stages' shapes (through shared/model/matmul.ts unless said):",
  stages:
    'stage forward / backward / step (ms, medians); achieved GFLOP/s = matmul FLOPs of F+B / (F+B time); ratio = achieved / the reference matmul rate; stash / mb = memory a microbatch in flight holds; peak F+B = most memory alive during one forward + backward:',
  targets: 'targets (printed, not asserted): bwd/fwd <= 2.5 for small and base; ratio >= 0.5 for base on wasm',
};
