/**
 * The digest of one frame's bytes, reported by the tab that sent a frame peer to peer and by the
 * tab that received it: the coordinator compares the two (a mismatch is an offence) without
 * seeing the frame. SHA-256 (WebCrypto: browsers in secure contexts, workers, Node 20), because a
 * sender who could find two frames with one digest could show the coordinator one and feed its
 * peer the other; a non-cryptographic hash would make that easy. Hex, 64 characters.
 */

/** The digest's length in hex characters (for schemas). */
export const FRAME_DIGEST_CHARS = 64;

export async function frameDigest(frame: Uint8Array): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new Error('frameDigest needs WebCrypto (crypto.subtle): a secure context (https or localhost) or Node 20+');
  const hash = new Uint8Array(await subtle.digest('SHA-256', frame as Uint8Array<ArrayBuffer>));
  let hex = '';
  for (const b of hash) hex += b.toString(16).padStart(2, '0');
  return hex;
}
