/**
 * Named float32 tensor bundles, used to move a stage's weights (and optimizer
 * state) between tabs, e.g. when CheckFree re-initialises a lost stage.
 *
 * Layout (little-endian):
 *
 *   offset  size  field
 *   0       4     magic 'SWNT' (ASCII)
 *   4       1     version (BUNDLE_VERSION)
 *   5       3     reserved, zero
 *   8       4     H = byte length of the JSON header, uint32
 *   12      H     JSON header, UTF-8: { "tensors": [{ name, shape, offset, length }] }
 *   P       ...   payload, P = align4(12 + H); tensors back to back in header
 *                 order, `offset` / `length` in bytes relative to P
 *
 * The bundle ends exactly where the last tensor does. Offsets must be the
 * canonical back-to-back ones, so a bundle has exactly one valid encoding.
 */
import { z } from 'zod';
import { align4, asBytes, readWords, resolveMaxBytes, writeWords } from './bytes';
import { assertFinite } from './finite';
import { FrameError } from './frame-error';
import { MAX_RANK, shapeSize } from './shape';

/** ASCII magic at the start of every named-tensor bundle. */
export const BUNDLE_MAGIC = 'SWNT';
/** Current bundle format version. */
export const BUNDLE_VERSION = 1;
/** Most tensors one bundle may hold. */
export const MAX_BUNDLE_TENSORS = 4096;
/** Longest tensor name, in UTF-16 code units. */
export const MAX_TENSOR_NAME_LENGTH = 256;

const PREFIX_BYTES = 12;
const MAGIC_BYTES = Uint8Array.from(BUNDLE_MAGIC, (c) => c.charCodeAt(0));

/** One named tensor: a shape (rank 0..4) and its row-major float32 values. */
export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

export interface BundleLimits {
  /** Reject bundles larger than this many bytes. Defaults to 64 MiB. */
  maxBytes?: number;
}

const tensorNameSchema = z
  .string()
  .min(1)
  .max(MAX_TENSOR_NAME_LENGTH)
  .regex(/^[^\u0000-\u001f\u007f]+$/, 'tensor names must not contain control characters');

/** Shapes are only checked structurally here; `shapeSize` rejects bad dims as 'shape'. */
const bundleEntrySchema = z.strictObject({
  name: tensorNameSchema,
  shape: z.array(z.number()).max(MAX_RANK + 1),
  offset: z.number().int().min(0),
  length: z.number().int().min(0),
});

/** Schema of the JSON header of a bundle. */
export const bundleHeaderSchema = z.strictObject({
  tensors: z.array(bundleEntrySchema).max(MAX_BUNDLE_TENSORS),
});

export type BundleHeader = z.infer<typeof bundleHeaderSchema>;

/**
 * Encode a record of named float32 tensors. Throws `FrameError` for invalid
 * names or shapes, data that does not match its shape, non-finite values, or
 * a bundle over `limits.maxBytes`.
 */
export function encodeNamedTensors(record: Record<string, NamedTensor>, limits: BundleLimits = {}): Uint8Array {
  const maxBytes = resolveMaxBytes(limits.maxBytes);
  const entries = Object.entries(record);
  if (entries.length > MAX_BUNDLE_TENSORS) {
    throw new FrameError('header', `${entries.length} tensors exceeds the limit of ${MAX_BUNDLE_TENSORS}`);
  }

  const tensors: BundleHeader['tensors'] = [];
  let payloadBytes = 0;
  for (const [name, { shape, data }] of entries) {
    if (!tensorNameSchema.safeParse(name).success) throw new FrameError('header', `invalid tensor name ${JSON.stringify(name)}`);
    if (!(data instanceof Float32Array)) throw new FrameError('dtype', `tensor ${name} must be a Float32Array`);
    const count = shapeSize(shape, 0);
    if (count !== data.length) {
      throw new FrameError('shape', `tensor ${name}: shape [${shape.join(', ')}] needs ${count} values, data has ${data.length}`);
    }
    assertFinite(data, name);
    tensors.push({ name, shape: [...shape], offset: payloadBytes, length: data.byteLength });
    payloadBytes += data.byteLength;
  }

  const json = new TextEncoder().encode(JSON.stringify({ tensors }));
  const payloadStart = align4(PREFIX_BYTES + json.length);
  const total = payloadStart + payloadBytes;
  if (total > maxBytes) throw new FrameError('size', `bundle of ${total} bytes exceeds limit ${maxBytes}`);

  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(MAGIC_BYTES, 0);
  view.setUint8(4, BUNDLE_VERSION);
  view.setUint32(8, json.length, true);
  out.set(json, PREFIX_BYTES);
  tensors.forEach((entry, i) => writeWords(out, payloadStart + entry.offset, entries[i][1].data));
  return out;
}

/** Parse and validate the JSON header bytes; every failure is FrameError('header'). */
function parseHeader(jsonBytes: Uint8Array): BundleHeader {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(jsonBytes));
  } catch (error) {
    throw new FrameError('header', `bundle header is not valid UTF-8 JSON: ${(error as Error).message}`);
  }
  const result = bundleHeaderSchema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new FrameError('header', `bundle header invalid at ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return result.data;
}

/**
 * Decode and validate a bundle produced by `encodeNamedTensors`. Accepts a
 * Uint8Array (including Node Buffers and offset views) or an ArrayBuffer.
 * Every rejection is a `FrameError`; returned data are fresh copies.
 */
export function decodeNamedTensors(buf: Uint8Array | ArrayBuffer, limits: BundleLimits = {}): Record<string, NamedTensor> {
  const maxBytes = resolveMaxBytes(limits.maxBytes);
  const bytes = asBytes(buf);
  if (bytes.length > maxBytes) throw new FrameError('size', `bundle of ${bytes.length} bytes exceeds limit ${maxBytes}`);
  for (let i = 0; i < Math.min(bytes.length, MAGIC_BYTES.length); i++) {
    if (bytes[i] !== MAGIC_BYTES[i]) throw new FrameError('magic', `bad magic byte ${bytes[i]} at offset ${i}`);
  }
  if (bytes.length < PREFIX_BYTES) throw new FrameError('truncated', `${bytes.length} bytes is shorter than the bundle prefix`);

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint8(4);
  if (version !== BUNDLE_VERSION) throw new FrameError('version', `unsupported bundle version ${version}`);
  if (bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) throw new FrameError('header', 'reserved bytes must be zero');
  const headerLength = view.getUint32(8, true);
  if (headerLength > bytes.length - PREFIX_BYTES) {
    throw new FrameError('truncated', `header claims ${headerLength} bytes, only ${bytes.length - PREFIX_BYTES} remain`);
  }
  const { tensors } = parseHeader(bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + headerLength));

  const payloadStart = align4(PREFIX_BYTES + headerLength);
  const payloadBytes = bytes.length - payloadStart;
  const names = new Set<string>();
  let expectedOffset = 0;
  for (const { name, shape, offset, length } of tensors) {
    if (names.has(name)) throw new FrameError('header', `duplicate tensor name ${JSON.stringify(name)}`);
    names.add(name);
    const needed = shapeSize(shape, 0) * 4;
    if (length !== needed) throw new FrameError('shape', `tensor ${name}: shape [${shape.join(', ')}] needs ${needed} bytes, header says ${length}`);
    if (offset !== expectedOffset) throw new FrameError('header', `tensor ${name}: offset ${offset}, expected ${expectedOffset}`);
    expectedOffset += length;
  }
  if (payloadBytes < expectedOffset) {
    throw new FrameError('truncated', `payload has ${Math.max(payloadBytes, 0)} bytes, header needs ${expectedOffset}`);
  }
  if (payloadBytes > expectedOffset) {
    throw new FrameError('size', `payload has ${payloadBytes} bytes, header needs only ${expectedOffset}`);
  }

  return Object.fromEntries(
    tensors.map(({ name, shape, offset, length }) => {
      const data = readWords(Float32Array, bytes, payloadStart + offset, length / 4);
      assertFinite(data, name);
      return [name, { shape, data }];
    }),
  );
}
