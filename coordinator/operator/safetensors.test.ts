import { describe, it, expect } from 'vitest';
import { decodeSafetensors, encodeSafetensors, SafetensorsError } from './safetensors.js';
import { assembleModelFile, readModelFile, stageWeightsOf } from './model-file.js';
import { configForStages, getPreset } from '../../shared/model/config.js';
import { stageParamSpecs, initialValue } from '../../shared/model/params.js';

/** A hand-built file: header JSON (unpadded) + data. */
function rawFile(header: unknown, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe('safetensors', () => {
  it('round-trips tensors and metadata with an 8-byte aligned, little-endian layout', () => {
    const a = Float32Array.from([1, -2.5, 3e-8, 4]);
    const b = Float32Array.from([Math.PI]);
    const bytes = encodeSafetensors(
      [
        ['a', { shape: [2, 2], data: a }],
        ['b.c', { shape: [1], data: b }],
      ],
      { format: 'test', note: 'ok' },
    );
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + n) % 8).toBe(0);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    expect(header).toEqual({
      __metadata__: { format: 'test', note: 'ok' },
      a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] },
      'b.c': { dtype: 'F32', shape: [1], data_offsets: [16, 20] },
    });
    expect(new DataView(bytes.buffer).getFloat32(8 + n + 4, true)).toBe(-2.5);
    const back = decodeSafetensors(bytes);
    expect(back.metadata).toEqual({ format: 'test', note: 'ok' });
    expect(back.tensors.get('a')).toEqual({ shape: [2, 2], data: a });
    expect(back.tensors.get('b.c')!.data[0]).toBeCloseTo(Math.PI, 6);
  });

  it('rejects malformed files', () => {
    const four = new Uint8Array(16);
    expect(() => decodeSafetensors(new Uint8Array(4))).toThrow(SafetensorsError);
    expect(() => decodeSafetensors(rawFile({ x: { dtype: 'F16', shape: [4], data_offsets: [0, 8] } }, new Uint8Array(8)))).toThrow(/F16/);
    // A hole between tensors.
    expect(() =>
      decodeSafetensors(rawFile({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, y: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } }, new Uint8Array(12))),
    ).toThrow(/hole/);
    // Overlap.
    expect(() =>
      decodeSafetensors(rawFile({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, y: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12))),
    ).toThrow(SafetensorsError);
    // Shape and offsets disagree; trailing bytes; offsets past the end; header length past the end.
    expect(() => decodeSafetensors(rawFile({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, four))).toThrow(/needs 12 bytes/);
    expect(() => decodeSafetensors(rawFile({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, four))).toThrow(/tensors cover 8/);
    expect(() => decodeSafetensors(rawFile({ x: { dtype: 'F32', shape: [8], data_offsets: [0, 32] } }, four))).toThrow(/outside/);
    const bad = rawFile({}, new Uint8Array(0));
    new DataView(bad.buffer).setBigUint64(0, 1000n, true);
    expect(() => decodeSafetensors(bad)).toThrow(/exceeds/);
    expect(() => decodeSafetensors(rawFile({ __metadata__: { n: 1 } }, new Uint8Array(0)))).toThrow(/string/);
  });

  it('a model file uses global names and re-splits into any stage count', () => {
    const base = getPreset('tiny');
    const c4 = configForStages(base, 4);
    const weights = [0, 1, 2, 3].map((s) => Object.fromEntries(stageParamSpecs(c4, s).map((p) => [p.name, initialValue(c4, p)])));
    const bytes = assembleModelFile(c4, weights, { run_id: 'r1' });
    const file = readModelFile(bytes);
    expect(file.config).toEqual(c4);
    expect(file.metadata).toMatchObject({ format: 'volunteer-swarm-llama', tokenizer: 'byte', run_id: 'r1' });
    expect([...file.tensors.keys()]).toContain('blocks.3.attn.wq');
    // Stage 3's local block 0 is global block 3.
    expect(file.tensors.get('blocks.3.attn.wq')!.data).toEqual(weights[3]!['blocks.0.attn.wq']);
    const two = stageWeightsOf(file, 2);
    expect(two.config.layersPerStage).toBe(2);
    expect(two.weights[1]!['blocks.1.attn.wq']).toEqual(weights[3]!['blocks.0.attn.wq']);
    expect(two.weights[1]!['head.lm_head']).toEqual(weights[3]!['head.lm_head']);
    expect(() => stageWeightsOf(file, 3)).toThrow(/must divide/);
    // A missing stage tensor is refused on both sides.
    delete weights[2]!['blocks.0.mlp.w_up'];
    expect(() => assembleModelFile(c4, weights)).toThrow(/stage 2 did not send "blocks.0.mlp.w_up"/);
    const plain = encodeSafetensors([['x', { shape: [1], data: Float32Array.from([1]) }]]);
    expect(() => readModelFile(plain)).toThrow(/not a swarm model file/);
  });
});
