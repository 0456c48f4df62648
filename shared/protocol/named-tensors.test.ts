import { describe, expect, it } from 'vitest';
import { rejectReason } from '../../testing/reject-reason';
import { FrameError, type FrameErrorReason } from './frame-error';
import { decodeNamedTensors, encodeNamedTensors, type NamedTensor } from './named-tensors';

function tensor(shape: number[], offset = 0): NamedTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, data: Float32Array.from({ length: n }, (_, i) => offset + i / 8) };
}

const sample: Record<string, NamedTensor> = {
  'embed/w': tensor([10, 4]),
  'block_0/attn/wq': tensor([4, 4], 100),
  'block_0/norm/g': tensor([4], -3),
  scalar: tensor([], 7),
  'block_0/mlp/w1': tensor([2, 3, 4, 1], 1),
};

/** Rewrite the JSON header of an encoded bundle (payload is kept). */
function withHeader(bundle: Uint8Array, edit: (header: { tensors: Record<string, unknown>[] }) => unknown): Uint8Array {
  const view = new DataView(bundle.buffer, bundle.byteOffset);
  const len = view.getUint32(8, true);
  const header = JSON.parse(new TextDecoder().decode(bundle.subarray(12, 12 + len)));
  const payload = bundle.subarray((12 + len + 3) & ~3);
  const json = new TextEncoder().encode(JSON.stringify(edit(header) ?? header));
  const start = (12 + json.length + 3) & ~3;
  const out = new Uint8Array(start + payload.length);
  out.set(bundle.subarray(0, 8));
  new DataView(out.buffer).setUint32(8, json.length, true);
  out.set(json, 12);
  out.set(payload, start);
  return out;
}

describe('named tensor bundles', () => {
  it('round trips names, order, shapes and values', () => {
    const decoded = decodeNamedTensors(encodeNamedTensors(sample));
    expect(Object.keys(decoded)).toEqual(Object.keys(sample));
    for (const [name, { shape, data }] of Object.entries(sample)) {
      expect(decoded[name].shape).toEqual(shape);
      expect(decoded[name].data).toBeInstanceOf(Float32Array);
      expect(Array.from(decoded[name].data)).toEqual(Array.from(data));
    }
  });

  it('round trips an empty bundle and unusual names', () => {
    expect(decodeNamedTensors(encodeNamedTensors({}))).toEqual({});
    const odd = { 'naïve — ünïcode': tensor([3]), 'a b.c:d[0]': tensor([1]) };
    const decoded = decodeNamedTensors(encodeNamedTensors(odd));
    expect(Object.keys(decoded)).toEqual(Object.keys(odd));
  });

  it('keeps a "__proto__" name as an own property', () => {
    const record = Object.fromEntries([['__proto__', tensor([2])]]) as Record<string, NamedTensor>;
    const decoded = decodeNamedTensors(encodeNamedTensors(record));
    expect(Object.hasOwn(decoded, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
  });

  it('aligns the payload to 4 bytes, whatever the header length', () => {
    const paddings = new Set<number>();
    for (let extra = 0; extra < 4; extra++) {
      const name = 'n'.repeat(1 + extra);
      const bundle = encodeNamedTensors({ [name]: tensor([3]) });
      const headerEnd = 12 + new DataView(bundle.buffer).getUint32(8, true);
      const payloadStart = bundle.length - 3 * 4;
      expect(payloadStart % 4).toBe(0);
      expect(payloadStart - headerEnd).toBeGreaterThanOrEqual(0);
      expect(payloadStart - headerEnd).toBeLessThan(4);
      paddings.add(payloadStart - headerEnd);
      expect(Array.from(decodeNamedTensors(bundle)[name].data)).toEqual(Array.from(tensor([3]).data));
    }
    expect(paddings.size).toBe(4);
  });

  it('accepts ArrayBuffer, Node Buffer and misaligned views', () => {
    const bundle = encodeNamedTensors(sample);
    expect(Object.keys(decodeNamedTensors(bundle.buffer as ArrayBuffer))).toHaveLength(5);
    expect(Object.keys(decodeNamedTensors(Buffer.from(bundle)))).toHaveLength(5);
    const backing = new Uint8Array(bundle.length + 3);
    backing.set(bundle, 3);
    const decoded = decodeNamedTensors(backing.subarray(3));
    expect(Array.from(decoded['block_0/attn/wq'].data)).toEqual(Array.from(sample['block_0/attn/wq'].data));
  });

  it('rejects bad encoder input', () => {
    expect(rejectReason(() => encodeNamedTensors({ a: { shape: [3], data: new Float32Array(2) } }))).toBe('shape');
    expect(rejectReason(() => encodeNamedTensors({ a: { shape: [1, 1, 1, 1, 1], data: new Float32Array(1) } }))).toBe('shape');
    expect(rejectReason(() => encodeNamedTensors({ a: { shape: [2], data: new Float32Array([1, NaN]) } }))).toBe('nonfinite');
    expect(rejectReason(() => encodeNamedTensors({ '': tensor([1]) }))).toBe('header');
    expect(rejectReason(() => encodeNamedTensors({ 'a\nb': tensor([1]) }))).toBe('header');
    expect(rejectReason(() => encodeNamedTensors({ a: { shape: [1], data: new Int32Array(1) as never } }))).toBe('dtype');
    expect(rejectReason(() => encodeNamedTensors(sample, { maxBytes: 100 }))).toBe('size');
  });

  it('rejects wrong magic, version and reserved bytes', () => {
    const good = encodeNamedTensors(sample);
    const magic = good.slice();
    magic[1] = 0;
    expect(rejectReason(() => decodeNamedTensors(magic))).toBe('magic');
    const version = good.slice();
    version[4] = 9;
    expect(rejectReason(() => decodeNamedTensors(version))).toBe('version');
    const reserved = good.slice();
    reserved[6] = 1;
    expect(rejectReason(() => decodeNamedTensors(reserved))).toBe('header');
    expect(rejectReason(() => decodeNamedTensors('SWNT' as never))).toBe('magic');
  });

  it('rejects truncated bundles at every length', () => {
    const good = encodeNamedTensors({ a: tensor([3]), b: tensor([2, 2]) });
    for (let len = 0; len < good.length; len++) {
      const reason = rejectReason(() => decodeNamedTensors(good.subarray(0, len)));
      // Cutting inside the JSON header makes the header claim more bytes than remain.
      expect(reason).toBe('truncated');
    }
  });

  it('rejects padded and oversized bundles', () => {
    const good = encodeNamedTensors(sample);
    const padded = new Uint8Array(good.length + 4);
    padded.set(good);
    expect(rejectReason(() => decodeNamedTensors(padded))).toBe('size');
    expect(rejectReason(() => decodeNamedTensors(good, { maxBytes: good.length - 1 }))).toBe('size');
  });

  it('rejects non-finite payload values', () => {
    const good = encodeNamedTensors({ a: tensor([4]) });
    const bad = good.slice();
    new DataView(bad.buffer).setFloat32(bad.length - 8, NaN, true);
    expect(rejectReason(() => decodeNamedTensors(bad))).toBe('nonfinite');
  });

  it('validates the JSON header', () => {
    const good = encodeNamedTensors({ a: tensor([2, 2]), b: tensor([3]) });
    expect(decodeNamedTensors(withHeader(good, () => undefined)).b.shape).toEqual([3]);

    const cases: [string, (h: { tensors: Record<string, unknown>[] }) => unknown, FrameErrorReason][] = [
      ['not an object', () => [1, 2], 'header'],
      ['extra key', (h) => ({ ...h, extra: 1 }), 'header'],
      ['duplicate names', (h) => void (h.tensors[1].name = 'a'), 'header'],
      ['negative offset', (h) => void (h.tensors[0].offset = -4), 'header'],
      ['non-canonical offset', (h) => void ((h.tensors[1].offset = 20), (h.tensors[0].length = 16)), 'header'],
      ['length does not match shape', (h) => void (h.tensors[1].length = 8), 'shape'],
      ['shape with a zero dim', (h) => void (h.tensors[1].shape = [0]), 'shape'],
      ['fractional dim', (h) => void (h.tensors[1].shape = [1.5]), 'shape'],
      ['rank 5', (h) => void (h.tensors[1].shape = [1, 1, 1, 1, 3]), 'shape'],
      ['shape not numbers', (h) => void (h.tensors[1].shape = ['3']), 'header'],
      ['shape larger than payload', (h) => void ((h.tensors[1].shape = [4]), (h.tensors[1].length = 16)), 'truncated'],
      ['shape smaller than payload', (h) => void ((h.tensors[1].shape = [2]), (h.tensors[1].length = 8)), 'size'],
    ];
    for (const [label, edit, reason] of cases) {
      expect(rejectReason(() => decodeNamedTensors(withHeader(good, edit))), label).toBe(reason);
    }

    const notJson = good.slice();
    notJson[12] = 0x7b + 1; // '|' instead of '{'
    expect(rejectReason(() => decodeNamedTensors(notJson))).toBe('header');
    const badUtf8 = good.slice();
    badUtf8[14] = 0xff;
    expect(rejectReason(() => decodeNamedTensors(badUtf8))).toBe('header');
  });

  it('2,000 mutated bundles decode or throw FrameError', () => {
    let seed = 99;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const good = encodeNamedTensors({ a: tensor([2, 2]), b: tensor([3]) });
    for (let n = 0; n < 2000; n++) {
      const buf = good.slice(0, rand() < 0.2 ? Math.floor(rand() * good.length) : good.length);
      for (let k = 0; k < 1 + Math.floor(rand() * 3) && buf.length; k++) buf[Math.floor(rand() * buf.length)] = Math.floor(rand() * 256);
      try {
        decodeNamedTensors(buf);
      } catch (error) {
        expect(error).toBeInstanceOf(FrameError);
      }
    }
  });
});
