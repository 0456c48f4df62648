/** What one PeerLink measured: the figures a tab reports (p2p bytes, per-pair latency). */
export interface LinkStats {
  peer: string;
  state: 'connecting' | 'open' | 'down';
  /** Frames and frame bytes the peer acknowledged. */
  framesSent: number;
  bytesSent: number;
  /** Complete frames and their bytes received from the peer. */
  framesReceived: number;
  bytesReceived: number;
  /** Bytes on the data channel (frames, chunk headers, acks, pings). */
  wireBytesSent: number;
  wireBytesReceived: number;
  /** Ping round-trip time, moving average (null before the first pong). */
  rttMs: number | null;
  /** Enqueue to acknowledgement of a frame, moving average and last (null before the first). */
  frameMs: number | null;
  lastFrameMs: number | null;
  /** Milliseconds from start to open (null until open). */
  openMs: number | null;
  queuedFrames: number;
  unackedFrames: number;
  bufferedBytes: number;
}
