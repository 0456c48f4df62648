/**
 * The messages a PeerLink exchanges on its one RTCDataChannel (ordered, reliable), each a binary
 * data-channel message no larger than the channel's message size. A frame travels as one `start`
 * message (its sequence number, total length and first bytes) and as many `more` messages as it
 * needs. The channel is ordered and one link sends one frame at a time, yet every chunk names its
 * frame and offset: a chunk lost or out of place (a transport bug) breaks the link loudly instead
 * of handing up a frame with its bytes shuffled.
 *
 *   start  [u8 1][3 pad][u32 seq][u32 totalBytes] first bytes
 *   more   [u8 2][3 pad][u32 seq][u32 offset]     next bytes
 *   ack    [u8 3][3 pad][u32 seq]                 the frame `seq` arrived complete
 *   ping   [u8 4][3 pad][u32 id][f64 sentAt]      liveness and round-trip time
 *   pong   [u8 5][3 pad][u32 id][f64 sentAt]      the ping echoed
 *
 * Integers are little-endian. decodeLinkMessage validates a message from the peer and throws
 * LinkProtocolError for anything else.
 */

export const START_HEADER_BYTES = 12;
export const MORE_HEADER_BYTES = 12;
/** The larger of the two chunk headers. */
export const CHUNK_HEADER_BYTES = 12;
const ACK_BYTES = 8;
const PING_BYTES = 16;

const enum Code {
  Start = 1,
  More = 2,
  Ack = 3,
  Ping = 4,
  Pong = 5,
}

export type LinkMessage =
  | { type: 'start'; seq: number; totalBytes: number; data: Uint8Array }
  | { type: 'more'; seq: number; offset: number; data: Uint8Array }
  | { type: 'ack'; seq: number }
  | { type: 'ping' | 'pong'; id: number; sentAt: number };

/** A message from the peer that breaks the link protocol. */
export class LinkProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LinkProtocolError';
  }
}

/** `start` message: header and `data` (the frame's first bytes). */
export function encodeStart(seq: number, totalBytes: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(START_HEADER_BYTES + data.byteLength);
  const view = new DataView(out.buffer);
  view.setUint8(0, Code.Start);
  view.setUint32(4, seq, true);
  view.setUint32(8, totalBytes, true);
  out.set(data, START_HEADER_BYTES);
  return out;
}

/** `more` message: the bytes of frame `seq` from `offset` on. */
export function encodeMore(seq: number, offset: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(MORE_HEADER_BYTES + data.byteLength);
  const view = new DataView(out.buffer);
  view.setUint8(0, Code.More);
  view.setUint32(4, seq, true);
  view.setUint32(8, offset, true);
  out.set(data, MORE_HEADER_BYTES);
  return out;
}

export function encodeAck(seq: number): Uint8Array {
  const out = new Uint8Array(ACK_BYTES);
  const view = new DataView(out.buffer);
  view.setUint8(0, Code.Ack);
  view.setUint32(4, seq, true);
  return out;
}

export function encodePing(type: 'ping' | 'pong', id: number, sentAt: number): Uint8Array {
  const out = new Uint8Array(PING_BYTES);
  const view = new DataView(out.buffer);
  view.setUint8(0, type === 'ping' ? Code.Ping : Code.Pong);
  view.setUint32(4, id, true);
  view.setFloat64(8, sentAt, true);
  return out;
}

/** Parses one data-channel message from the peer. `data` fields are views into `msg`. */
export function decodeLinkMessage(msg: Uint8Array): LinkMessage {
  if (msg.byteLength < 1) throw new LinkProtocolError('empty message');
  const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  const need = (n: number, what: string) => {
    if (msg.byteLength !== n) throw new LinkProtocolError(`${what} message must be ${n} bytes, got ${msg.byteLength}`);
  };
  switch (msg[0]) {
    case Code.Start:
      if (msg.byteLength < START_HEADER_BYTES) throw new LinkProtocolError(`start message shorter than its ${START_HEADER_BYTES}-byte header`);
      return { type: 'start', seq: view.getUint32(4, true), totalBytes: view.getUint32(8, true), data: msg.subarray(START_HEADER_BYTES) };
    case Code.More:
      if (msg.byteLength < MORE_HEADER_BYTES) throw new LinkProtocolError(`more message shorter than its ${MORE_HEADER_BYTES}-byte header`);
      return { type: 'more', seq: view.getUint32(4, true), offset: view.getUint32(8, true), data: msg.subarray(MORE_HEADER_BYTES) };
    case Code.Ack:
      need(ACK_BYTES, 'ack');
      return { type: 'ack', seq: view.getUint32(4, true) };
    case Code.Ping:
    case Code.Pong: {
      need(PING_BYTES, msg[0] === Code.Ping ? 'ping' : 'pong');
      const sentAt = view.getFloat64(8, true);
      if (!Number.isFinite(sentAt)) throw new LinkProtocolError('ping time is not finite');
      return { type: msg[0] === Code.Ping ? 'ping' : 'pong', id: view.getUint32(4, true), sentAt };
    }
    default:
      throw new LinkProtocolError(`unknown message type ${msg[0]}`);
  }
}
