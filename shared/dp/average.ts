/**
 * The group's mean pseudo-gradient: the replicas' (decoded) pseudo-gradients added in a fixed
 * order into a float32 accumulator, then divided by their count, stored as float32. The
 * coordinator (pseudo-grad-sum.ts, chunk by chunk) and the local trainer use this one function,
 * so the swarm and the reference produce the same bytes.
 */
export function averageInOrder(parts: readonly Float32Array[]): Float32Array {
  if (parts.length === 0) throw new RangeError('average of no pseudo-gradients');
  const n = parts[0]!.length;
  const acc = new Float32Array(n);
  for (const p of parts) {
    if (p.length !== n) throw new RangeError(`pseudo-gradients of ${n} and ${p.length} values`);
    for (let i = 0; i < n; i++) acc[i] = acc[i]! + p[i]!;
  }
  const k = parts.length;
  for (let i = 0; i < n; i++) acc[i] = acc[i]! / k;
  return acc;
}

/** Sum of squares (in double) of a float32 vector. */
export function sumSquares(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return s;
}
