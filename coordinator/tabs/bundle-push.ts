/**
 * Sends a large bundle (a stage's state, a diloco outer state) to a tab in pieces, ahead of the
 * request that uses it: `put_bundle_chunk` per piece, then the request says `staged: true` and
 * carries no bundle (the tab's side: shared/volunteer/staged-bundle.ts).
 *
 * Why: socket.io writes a message whole, and the heartbeat's ping is queued behind it. A `base`
 * state (~100 MB) as one message holds a 50 Mbit/s link for 16 s and a 20 Mbit/s one for 41 s, so
 * the coordinator's ping reaches the tab only after it, and the pong comes back after the 20 s
 * heartbeat timeout: the joiner was dropped while it was receiving (the 32-tab `base` run needed
 * `--heartbeat-timeout 60000`; coordinator/tabs/bundle-push.test.ts shows it at 2 Mbit/s). In
 * pieces of at most PUSH_CHUNK_BYTES, at most PUSH_WINDOW of them unacknowledged, a ping waits
 * behind at most PUSH_WINDOW pieces (8 s at the slowest link allowed, 2 Mbit/s), while the
 * window keeps the link busy across the acknowledgements' round trips.
 */
import { okReply, askStage, AskError, ASK_TIMEOUT_MS, transferTimeoutMs } from './ask-stage.js';
import type { Volunteer } from './registry.js';

/** Largest piece of a pushed bundle (1 MiB: 0.17 s at 50 Mbit/s, 4.2 s at 2 Mbit/s). */
export const PUSH_CHUNK_BYTES = 1024 * 1024;
/** Pieces sent before the first is acknowledged. */
export const PUSH_WINDOW = 2;

/**
 * Whether `bytes` should travel in pieces to `v` (more than one piece), and if so sends them all:
 * resolves true once the tab acknowledged every piece, false (nothing sent) when the bundle fits
 * one piece and should go inline. Throws AskError when a piece is refused or late.
 */
export async function pushStaged(v: Volunteer, bytes: Uint8Array, chunkBytes = PUSH_CHUNK_BYTES): Promise<boolean> {
  if (!(Number.isInteger(chunkBytes) && chunkBytes > 0)) throw new RangeError(`chunk size must be a positive integer, got ${chunkBytes}`);
  const total = bytes.byteLength;
  if (total <= chunkBytes) return false;
  const deadline = Date.now() + transferTimeoutMs(ASK_TIMEOUT_MS.state, total);
  const inFlight = new Set<Promise<void>>();
  let failure: unknown = null;
  for (let offset = 0; offset < total && failure === null; offset += chunkBytes) {
    const piece = bytes.subarray(offset, Math.min(total, offset + chunkBytes));
    const left = deadline - Date.now();
    if (left <= 0) throw new AskError('timeout', `${v.id} did not take a bundle of ${total} bytes in time (at ${offset})`);
    const p: Promise<void> = askStage(v, 'put_bundle_chunk', [{ offset, total }, piece], okReply, Math.min(left, transferTimeoutMs(ASK_TIMEOUT_MS.replica, PUSH_WINDOW * piece.byteLength)))
      .then(() => void inFlight.delete(p))
      .catch((e: unknown) => {
        inFlight.delete(p);
        failure ??= e;
      });
    inFlight.add(p);
    if (inFlight.size >= PUSH_WINDOW) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  if (failure !== null) throw failure;
  return true;
}
