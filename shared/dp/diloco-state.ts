/**
 * The diloco state a joining replica receives from a sibling (besides the stage's weights and
 * Adam state, which travel as today's stage bundles): the synced weights, the outer momentum and
 * the sync count, as a named-tensor bundle (shared/protocol/named-tensors.ts). Decoding checks
 * the names, the sizes against the stage's parameter count and finiteness.
 */
import { decodeNamedTensors, encodeNamedTensors, type BundleLimits } from '../protocol/named-tensors.js';
import { FrameError } from '../protocol/frame-error.js';
import { ENCODE_UNLIMITED } from '../protocol/state-bundle-limits.js';
import type { DilocoState } from './diloco-replica.js';

/** Never refused for its size (a `base` state is ~68 MB); the decoder bounds it (stateBundleLimits(specs, 2)). */
export function encodeDilocoState(s: DilocoState, limits: BundleLimits = ENCODE_UNLIMITED): Uint8Array {
  return encodeNamedTensors(
    {
      'diloco.synced': { shape: [s.synced.length], data: s.synced },
      'diloco.momentum': { shape: [s.momentum.length], data: s.momentum },
      'diloco.syncs': { shape: [1], data: Float32Array.of(s.syncs) },
    },
    limits,
  );
}

/** Decodes a state for a stage of `length` parameters; FrameError on anything else. */
export function decodeDilocoState(buf: Uint8Array | ArrayBuffer, length: number, limits: BundleLimits = {}): DilocoState {
  const t = decodeNamedTensors(buf, limits);
  const names = Object.keys(t).sort().join(',');
  if (names !== 'diloco.momentum,diloco.synced,diloco.syncs') throw new FrameError('header', `diloco state holds [${names}], expected diloco.momentum, diloco.synced, diloco.syncs`);
  for (const n of ['diloco.synced', 'diloco.momentum']) {
    if (t[n]!.data.length !== length) throw new FrameError('shape', `${n} has ${t[n]!.data.length} values, expected ${length}`);
  }
  const syncs = t['diloco.syncs']!.data;
  if (syncs.length !== 1 || !Number.isInteger(syncs[0]) || syncs[0]! < 0) throw new FrameError('header', `diloco.syncs must be one non-negative integer, got [${Array.from(syncs)}]`);
  return { synced: t['diloco.synced']!.data, momentum: t['diloco.momentum']!.data, syncs: syncs[0]! };
}
