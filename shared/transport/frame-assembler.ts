/**
 * Rebuilds the frames a peer sends as `start` / `more` chunks (link-messages.ts), checking every
 * chunk against what the peer declared: sequence numbers count up by one, a frame is no larger
 * than `maxFrameBytes` (checked before its buffer is allocated), chunks never overrun it, and a
 * new frame starts only after the previous one is complete.
 */
import { LinkProtocolError } from './link-messages.js';

export interface AssembledFrame {
  seq: number;
  bytes: Uint8Array;
}

export class FrameAssembler {
  private readonly maxFrameBytes: number;
  private expectedSeq = 0;
  private current: { seq: number; bytes: Uint8Array; filled: number } | null = null;

  constructor(maxFrameBytes: number) {
    this.maxFrameBytes = maxFrameBytes;
  }

  /** A frame's first chunk; returns the frame if that chunk completes it. */
  start(seq: number, totalBytes: number, data: Uint8Array): AssembledFrame | null {
    if (this.current) throw new LinkProtocolError(`frame ${seq} started before frame ${this.current.seq} was complete`);
    if (seq !== this.expectedSeq) throw new LinkProtocolError(`frame ${seq} out of order: expected ${this.expectedSeq}`);
    if (totalBytes < 1 || totalBytes > this.maxFrameBytes) throw new LinkProtocolError(`frame of ${totalBytes} bytes outside 1..${this.maxFrameBytes}`);
    this.expectedSeq = (seq + 1) >>> 0;
    this.current = { seq, bytes: new Uint8Array(totalBytes), filled: 0 };
    return this.add(data);
  }

  /** Frame `seq`'s chunk at `offset`; returns the frame if that chunk completes it. */
  more(seq: number, offset: number, data: Uint8Array): AssembledFrame | null {
    if (!this.current) throw new LinkProtocolError(`chunk of frame ${seq} without a frame start`);
    if (seq !== this.current.seq || offset !== this.current.filled) {
      throw new LinkProtocolError(`chunk of frame ${seq} at byte ${offset}: expected frame ${this.current.seq} at byte ${this.current.filled}`);
    }
    return this.add(data);
  }

  /** Bytes of the frame being received (0 between frames). */
  get pendingBytes(): number {
    return this.current?.filled ?? 0;
  }

  private add(data: Uint8Array): AssembledFrame | null {
    const cur = this.current!;
    if (data.byteLength === 0 && cur.filled < cur.bytes.byteLength) throw new LinkProtocolError('empty frame chunk');
    if (cur.filled + data.byteLength > cur.bytes.byteLength) {
      throw new LinkProtocolError(`frame ${cur.seq} overrun: ${cur.filled + data.byteLength} bytes of ${cur.bytes.byteLength}`);
    }
    cur.bytes.set(data, cur.filled);
    cur.filled += data.byteLength;
    if (cur.filled < cur.bytes.byteLength) return null;
    this.current = null;
    return { seq: cur.seq, bytes: cur.bytes };
  }
}
