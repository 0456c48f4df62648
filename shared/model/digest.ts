/**
 * A fingerprint of a stage's weights. The replicas of a stage take identical steps, so they must
 * hold identical bits; tabs on different GPUs or backends round differently, and the coordinator
 * compares fingerprints to find a replica that drifted (coordinator/replica-sync.ts).
 *
 * Two independent FNV-1a lanes (64 bits) over the raw 32-bit words of every parameter, in name
 * order, each parameter preceded by its length. Not a cryptographic hash: a tab can lie about it;
 * it detects honest drift, which is all it is used for.
 */
import type { NamedWeights } from './stage.js';

const FNV_PRIME = 0x01000193;

export function weightsDigest(w: NamedWeights): string {
  let a = 0x811c9dc5;
  let b = 0x01234567;
  const mix = (word: number) => {
    a = Math.imul(a ^ word, FNV_PRIME);
    b = Math.imul(b ^ (word >>> 16 | word << 16), FNV_PRIME);
  };
  for (const name of Object.keys(w).sort()) {
    const v = w[name]!;
    const words = new Uint32Array(v.buffer, v.byteOffset, v.length);
    mix(v.length);
    for (let i = 0; i < words.length; i++) mix(words[i]!);
  }
  return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0');
}
