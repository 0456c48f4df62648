import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '../../shared/model/tf.js';
import { useNodeBackend } from '../../trainer/node-backend.js';
import { Stage } from '../../shared/model/stage.js';
import { configForStages, getPreset } from '../../shared/model/config.js';
import { forwardPath } from '../../shared/schedule/paths.js';
import { mulberry32 } from '../../shared/model/rng.js';
import { generate, padContext, pickToken } from './sampling.js';
import { lastLogits } from './model-file.js';

beforeAll(async () => {
  await useNodeBackend('wasm');
});

describe('sampling', () => {
  it('pads the context to a power of two up to seqLen and points at its last token', () => {
    expect(padContext(Int32Array.from([5]), 64)).toEqual({ tokens: Int32Array.from([5, 0, 0, 0, 0, 0, 0, 0]), position: 0 });
    expect(padContext(new Int32Array(9).fill(1), 64).tokens).toHaveLength(16);
    expect(padContext(new Int32Array(33).fill(1), 48).tokens).toHaveLength(48);
    expect(padContext(new Int32Array(64).fill(1), 64)).toMatchObject({ position: 63 });
    expect(() => padContext(new Int32Array(0), 64)).toThrow(RangeError);
    expect(() => padContext(new Int32Array(65), 64)).toThrow(RangeError);
  });

  it('right padding leaves the logits of the real positions unchanged (causal attention)', async () => {
    const config = configForStages({ ...getPreset('tiny') }, 2);
    const stages = [0, 1].map((s) => new Stage(config, s));
    const context = Int32Array.from([67, 97, 108, 108, 32, 109, 101, 32, 73, 115, 104]); // 11 tokens -> padded to 16
    const padded = await lastLogits(stages, context);
    const direct = tf.tidy(() => {
      let x: tf.Tensor = tf.tensor2d(context, [1, context.length], 'int32');
      for (const hop of forwardPath(0, 2, false)) x = stages[hop.stage]!.infer(x, hop.segment);
      return tf.slice(x, [context.length - 1, 0], [1, -1]).dataSync() as Float32Array;
    });
    expect(padded).toHaveLength(256);
    let maxDiff = 0;
    for (let i = 0; i < 256; i++) maxDiff = Math.max(maxDiff, Math.abs(padded[i]! - direct[i]!));
    expect(maxDiff).toBeLessThan(1e-5);
    for (const s of stages) s.dispose();
  });

  it('picks the argmax at temperature 0 and draws from softmax(logits / t) otherwise', () => {
    const logits = Float32Array.from([0, 2, 1, -1]);
    expect(pickToken(logits, 0, () => 0.999)).toBe(1);
    const rand = mulberry32(3);
    const counts = [0, 0, 0, 0];
    const N = 20000;
    for (let i = 0; i < N; i++) counts[pickToken(logits, 1, rand)]!++;
    const z = [0, 2, 1, -1].map(Math.exp);
    const sum = z.reduce((a, b) => a + b, 0);
    z.forEach((p, i) => expect(Math.abs(counts[i]! / N - p / sum)).toBeLessThan(0.015));
    // A high temperature flattens the distribution.
    const hot = [0, 0, 0, 0];
    for (let i = 0; i < N; i++) hot[pickToken(logits, 100, rand)]!++;
    hot.forEach((c) => expect(Math.abs(c / N - 0.25)).toBeLessThan(0.02));
  });

  it('generates autoregressively over a sliding window of seqLen tokens', async () => {
    const seen: number[][] = [];
    // A fake model: the next token is (last + 1) mod 256.
    const tokens = await generate(
      async (ctx) => {
        seen.push(Array.from(ctx));
        const l = new Float32Array(256);
        l[(ctx[ctx.length - 1]! + 1) % 256] = 1;
        return l;
      },
      Int32Array.from([250, 251, 252]),
      { length: 6, temperature: 0, seed: 1, seqLen: 4 },
    );
    expect(tokens).toEqual([253, 254, 255, 0, 1, 2]);
    expect(seen[0]).toEqual([250, 251, 252]);
    expect(seen[5]).toEqual([254, 255, 0, 1]);
    // An empty prompt starts from a newline.
    const first: number[][] = [];
    await generate(async (ctx) => (first.push(Array.from(ctx)), new Float32Array(256)), new Int32Array(0), { length: 1, temperature: 0, seed: 1, seqLen: 8 });
    expect(first[0]).toEqual([10]);
  });
});
