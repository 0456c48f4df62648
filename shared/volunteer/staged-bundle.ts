/**
 * A bundle the coordinator sends in pieces (`put_bundle_chunk`, coordinator/tabs/bundle-push.ts)
 * ahead of the request that uses it (`assign` or `dp_set_state` with `staged: true`). A `base`
 * stage's state is ~100 MB: sent as one socket message it holds the socket for the whole transfer
 * (16 s at 50 Mbit/s, 400 s at the slowest link allowed) and the heartbeat's ping waits behind it,
 * so the tab is dropped as silent while it is receiving. In pieces, pings pass between them.
 *
 * The tab keeps at most one bundle: a piece at offset 0 starts a new one (dropping any other);
 * every piece must follow the previous one exactly and stay inside the announced total; `take()`
 * hands over a complete bundle once and forgets it.
 */

/** The largest bundle a tab accepts in pieces (a Uint8Array's practical limit; a `base` state is ~100 MB). */
export const MAX_STAGED_BYTES = 2 ** 31 - 1;

export interface BundleChunkInfo {
  /** Where this piece starts in the bundle. */
  offset: number;
  /** The whole bundle's bytes (the same in every piece). */
  total: number;
}

export class StagedBundle {
  private buf: Uint8Array | null = null;
  private received = 0;

  constructor(private readonly maxBytes = MAX_STAGED_BYTES) {}

  /** Keeps one piece; throws (and forgets the partial bundle) on a piece that does not fit. */
  put(info: BundleChunkInfo, bytes: Uint8Array): void {
    try {
      const offset = info?.offset;
      const total = info?.total;
      if (!Number.isSafeInteger(total) || total < 1 || total > this.maxBytes) throw new Error(`bundle piece: bad total ${String(total)} (1 to ${this.maxBytes} bytes)`);
      if (!(bytes instanceof Uint8Array) || bytes.byteLength === 0) throw new Error('bundle piece: no bytes');
      if (offset === 0) {
        this.buf = new Uint8Array(total);
        this.received = 0;
      }
      if (!this.buf) throw new Error(`bundle piece at offset ${String(offset)} before its first piece`);
      if (total !== this.buf.byteLength) throw new Error(`bundle piece: total ${total}, the bundle started with ${this.buf.byteLength}`);
      if (offset !== this.received) throw new Error(`bundle piece at offset ${String(offset)}, expected ${this.received}`);
      if (offset + bytes.byteLength > total) throw new Error(`bundle piece [${offset}, +${bytes.byteLength}) past the end (${total})`);
      this.buf.set(bytes, offset);
      this.received += bytes.byteLength;
    } catch (e) {
      this.buf = null;
      this.received = 0;
      throw e;
    }
  }

  /** The complete bundle, handed over once; throws when none is complete. */
  take(): Uint8Array {
    const buf = this.buf;
    if (!buf || this.received !== buf.byteLength) throw new Error(buf ? `staged bundle incomplete: ${this.received} of ${buf.byteLength} bytes` : 'no staged bundle');
    this.buf = null;
    this.received = 0;
    return buf;
  }
}
