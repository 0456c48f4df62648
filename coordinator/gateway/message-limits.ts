/**
 * The largest message a tab may legitimately send, derived from the run's shapes: a relayed
 * activation or gradient frame, or one chunk of an upload (bundle-transfer.ts), plus slack for
 * socket.io's framing. The socket refuses anything larger before it is parsed, so one stranger
 * cannot make the coordinator buffer 64 MiB per message. An upload as a whole (a stage's full
 * state) is bounded by maxBundleBytes.
 */
import type { ResolvedConfig } from '../../shared/model/config.js';
import { numStages } from '../../shared/model/config.js';
import { stageParamSpecs, sizeOf } from '../../shared/model/params.js';
import { maxRelayFrameBytes } from '../screening/relay-check.js';

/** Room for socket.io's packet framing, metadata beside a frame, and bundle headers. */
export const MESSAGE_SLACK_BYTES = 256 * 1024;
/** Header bytes a bundle spends per tensor at most (JSON entry with a long name and shape). */
const BUNDLE_BYTES_PER_TENSOR = 400;

/** The largest bundle a tab may upload this run: a stage's full state (weights and both Adam moments). */
export function maxBundleBytes(config: ResolvedConfig): number {
  let largestState = 0;
  for (let s = 0; s < numStages(config); s++) {
    const specs = stageParamSpecs(config, s);
    const values = specs.reduce((n, p) => n + sizeOf(p.shape), 0);
    // weights, Adam m and v, each tensor with its header entry
    largestState = Math.max(largestState, 3 * (4 * values + BUNDLE_BYTES_PER_TENSOR * specs.length));
  }
  return largestState + MESSAGE_SLACK_BYTES;
}

export function maxMessageBytes(config: ResolvedConfig, batch: number, chunkBytes: number): number {
  return Math.max(Math.min(chunkBytes, maxBundleBytes(config)), maxRelayFrameBytes(batch, config.seqLen, config.dModel)) + MESSAGE_SLACK_BYTES;
}
