/**
 * Pulls a bundle (weights, a full state, an accumulated gradient) from a tab in chunks of at most
 * `chunkBytes`, so no message a tab sends is larger than a chunk whatever the model: the socket's
 * size limit stays small (message-limits.ts) and a `base`-sized state (~100 MB) still moves. The
 * tab encodes the bundle once, when asked for its first chunk, and answers the rest from that
 * snapshot. Every chunk is checked (offset, size, the total against the largest bundle the run can
 * have) before it is kept; the whole transfer has one deadline.
 */
import { chunkSchema, type WeightParts } from '../../shared/protocol/events.js';
import type { Volunteer } from './registry.js';
import { AskError, askStage, transferTimeoutMs } from './ask-stage.js';
import { pushStaged, PUSH_CHUNK_BYTES } from './bundle-push.js';

/** What a tab can be asked to upload. */
export type Upload = { event: 'get_weights'; parts: WeightParts } | { event: 'get_grads'; iteration: number };

export class BundleTransfer {
  /** Bytes of the bundles each tab is sending now (the barrier waits longer for a tab that is). */
  private readonly sending = new Map<Volunteer, number>();

  constructor(
    /** Bytes per chunk (the coordinator asks for this much; a tab may send less). */
    readonly chunkBytes: number,
    /** The largest bundle this run can legitimately have (a stage's full state). */
    private maxTotalBytes: number,
  ) {
    if (!(Number.isInteger(chunkBytes) && chunkBytes > 0)) throw new RangeError(`chunk size must be a positive integer, got ${chunkBytes}`);
  }

  /**
   * The whole bundle `what` from `v`: its first chunk within `timeoutMs`, the whole within
   * `timeoutMs` plus the bundle's time on the slowest link allowed (ask-stage.ts). AskError on
   * failure ('invalid' for a bad chunk).
   */
  /** Bytes of the bundles `v` is sending now (0 when none). */
  movingBytes(v: Volunteer): number {
    return this.sending.get(v) ?? 0;
  }

  /**
   * Sends `bytes` to `v` in pieces of at most min(PUSH_CHUNK_BYTES, chunkBytes) ahead of the
   * request that uses them (bundle-push.ts): true once every piece was acknowledged (the request
   * then says `staged: true`), false when the bundle fits one piece and goes inline.
   */
  push(v: Volunteer, bytes: Uint8Array): Promise<boolean> {
    return pushStaged(v, bytes, Math.min(PUSH_CHUNK_BYTES, this.chunkBytes));
  }

  async pull(v: Volunteer, what: Upload, timeoutMs: number): Promise<Uint8Array> {
    let counted = 0;
    try {
      return await this.pullChunks(v, what, timeoutMs, (total) => {
        counted = total;
        this.sending.set(v, (this.sending.get(v) ?? 0) + total);
      });
    } finally {
      const left = (this.sending.get(v) ?? 0) - counted;
      if (left > 0) this.sending.set(v, left);
      else this.sending.delete(v);
    }
  }

  private async pullChunks(v: Volunteer, what: Upload, timeoutMs: number, onTotal: (total: number) => void): Promise<Uint8Array> {
    const started = Date.now();
    let deadline = started + timeoutMs;
    let limitMs = timeoutMs;
    const label = what.event === 'get_weights' ? `get_weights ${what.parts}` : 'get_grads';
    // Chunks are kept as they come and joined at the end: memory follows the bytes received,
    // not the total a tab claims.
    const chunks: Uint8Array[] = [];
    let total: number | null = null;
    let offset = 0;
    do {
      const left = deadline - Date.now();
      if (left <= 0) throw new AskError('timeout', `${v.id} did not finish sending ${label} within ${limitMs} ms`);
      const req = { offset, maxBytes: this.chunkBytes };
      const c =
        what.event === 'get_weights'
          ? await askStage(v, 'get_weights', [{ parts: what.parts, ...req }], chunkSchema, left)
          : await askStage(v, 'get_grads', [{ iteration: what.iteration, ...req }], chunkSchema, left);
      const bad = (why: string) => new AskError('invalid', `${v.id} answered ${label} with a bad chunk: ${why}`);
      if (c.offset !== offset) throw bad(`offset ${c.offset}, asked for ${offset}`);
      if (c.total > this.maxTotalBytes) throw bad(`a bundle of ${c.total} bytes, more than this run's largest (${this.maxTotalBytes})`);
      if (total === null) {
        total = c.total;
        onTotal(total);
        limitMs = transferTimeoutMs(timeoutMs, total);
        deadline = started + limitMs;
      }
      else if (c.total !== total) throw bad(`the total changed from ${total} to ${c.total}`);
      if (c.bytes.byteLength > this.chunkBytes) throw bad(`${c.bytes.byteLength} bytes, more than the ${this.chunkBytes} asked for`);
      if (c.bytes.byteLength === 0 && c.total > offset) throw bad('an empty chunk before the end');
      if (offset + c.bytes.byteLength > c.total) throw bad('past the end of the bundle');
      chunks.push(c.bytes);
      offset += c.bytes.byteLength;
    } while (offset < total);
    if (chunks.length === 1) return chunks[0]!;
    const whole = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      whole.set(c, at);
      at += c.byteLength;
    }
    return whole;
  }
}
