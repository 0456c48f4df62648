/**
 * How a diloco sync travels: a stage's flat pseudo-gradient (flat-weights.ts) is cut into chunks
 * of SYNC_CHUNK_VALUES values (a multiple of the int8 block, so chunking does not change the
 * quantization), each sent as one tensor frame (shared/protocol/codec.ts) of kind 'grad', shape
 * [count], in the run's `--dp-wire` dtype:
 *
 *   uplink   (replica -> coordinator)  fromStage = stage, toStage = -1
 *   downlink (coordinator -> replicas) fromStage = -1, toStage = stage (the averaged chunk)
 *
 * with iteration = the iteration after which the group syncs and microbatch = the chunk index.
 * Chunks let the coordinator sum streaming (pseudo-grad-sum.ts) and a tab upload while it trains.
 * Decoding checks everything against the plan: a stranger's chunk is never trusted.
 */
import { decodeTensorFrame, encodeTensorFrame, frameByteLength, type FrameHeader } from '../protocol/codec.js';
import { FrameError } from '../protocol/frame-error.js';
import { INT8_BLOCK_SIZE } from '../protocol/quantize.js';
import { WIRE_DTYPES, type WireEncoding } from '../protocol/wire-encoding.js';

/** Values per sync chunk: 2^20 (an int8 chunk is ~1.03 MiB). */
export const SYNC_CHUNK_VALUES = 1 << 20;

export interface ChunkRange {
  index: number;
  start: number;
  count: number;
}

/** The chunks of a flat vector of `total` values. */
export function syncChunks(total: number, chunkValues: number = SYNC_CHUNK_VALUES): ChunkRange[] {
  if (!Number.isInteger(total) || total < 1) throw new RangeError(`a sync needs at least one value, got ${total}`);
  if (!Number.isInteger(chunkValues) || chunkValues < 1 || chunkValues % INT8_BLOCK_SIZE !== 0) throw new RangeError(`chunk size must be a positive multiple of ${INT8_BLOCK_SIZE}, got ${chunkValues}`);
  const out: ChunkRange[] = [];
  for (let start = 0, index = 0; start < total; start += chunkValues, index++) out.push({ index, start, count: Math.min(chunkValues, total - start) });
  return out;
}

export type SyncDirection = 'up' | 'down';

export interface ChunkAddress {
  stage: number;
  /** The iteration after which the group syncs. */
  iteration: number;
  direction: SyncDirection;
  wire: WireEncoding;
}

function headerOf(a: ChunkAddress, c: ChunkRange): FrameHeader {
  return {
    kind: 'grad',
    iteration: a.iteration,
    microbatch: c.index,
    hop: 0,
    fromStage: a.direction === 'up' ? a.stage : -1,
    toStage: a.direction === 'up' ? -1 : a.stage,
    dtype: WIRE_DTYPES[a.wire],
    shape: [c.count],
  };
}

/** Encodes chunk `c`, whose values are `data` (c.count of them; FrameError on non-finite values). */
export function encodeSyncChunk(a: ChunkAddress, c: ChunkRange, data: Float32Array): Uint8Array {
  return encodeTensorFrame(headerOf(a, c), data);
}

/** The values of chunk `c` in the flat vector `flat` (a view). */
export function chunkOf(flat: Float32Array, c: ChunkRange): Float32Array {
  return flat.subarray(c.start, c.start + c.count);
}

/** Bytes of one encoded chunk of `count` values. */
export function syncChunkBytes(count: number, wire: WireEncoding): number {
  return frameByteLength([count], WIRE_DTYPES[wire]);
}

/** Bytes of a whole pseudo-gradient of `total` values sent one way. */
export function syncBytes(total: number, wire: WireEncoding, chunkValues: number = SYNC_CHUNK_VALUES): number {
  return syncChunks(total, chunkValues).reduce((n, c) => n + syncChunkBytes(c.count, wire), 0);
}

/**
 * Decodes a chunk and checks it is chunk `c` for address `a` (direction, stage, iteration,
 * index, size, dtype); the codec checks finiteness and scales. Every rejection is a FrameError.
 */
export function decodeSyncChunk(buf: Uint8Array | ArrayBuffer, a: ChunkAddress, c: ChunkRange): Float32Array {
  const want = headerOf(a, c);
  const { header, data } = decodeTensorFrame(buf, { dtype: want.dtype, maxBytes: syncChunkBytes(c.count, a.wire) });
  const bad = (what: string, got: unknown, exp: unknown) => new FrameError('header', `sync chunk ${c.index} of stage ${a.stage}: ${what} ${String(got)}, expected ${String(exp)}`);
  if (header.kind !== want.kind) throw bad('kind', header.kind, want.kind);
  if (header.iteration !== want.iteration) throw bad('iteration', header.iteration, want.iteration);
  if (header.microbatch !== want.microbatch) throw bad('chunk index', header.microbatch, want.microbatch);
  if (header.fromStage !== want.fromStage || header.toStage !== want.toStage) throw bad('route', `${header.fromStage}->${header.toStage}`, `${want.fromStage}->${want.toStage}`);
  if (header.shape.length !== 1 || header.shape[0] !== c.count) throw new FrameError('shape', `sync chunk ${c.index} of stage ${a.stage}: shape [${header.shape}], expected [${c.count}]`);
  return data as Float32Array;
}

/** What the other end reads back from `flat` sent with `wire` (encode then decode, chunk by chunk). */
export function syncRoundTrip(flat: Float32Array, a: ChunkAddress, chunkValues: number = SYNC_CHUNK_VALUES): Float32Array {
  if (a.wire === 'f32') return Float32Array.from(flat);
  const out = new Float32Array(flat.length);
  for (const c of syncChunks(flat.length, chunkValues)) out.set(decodeSyncChunk(encodeSyncChunk(a, c, chunkOf(flat, c)), a, c), c.start);
  return out;
}
