/**
 * Exact synchronous data parallelism inside a stage: each replica accumulated the gradients of
 * the microbatch hops it ran (each already scaled by 1/M), so their sum is the stage's full
 * gradient. At the barrier the coordinator (tabs sit behind NATs) fetches every replica's
 * accumulated gradient, checks it against the stage's parameter specs, adds them in a fixed order
 * and sends the same sum back to every replica, which then applies the identical clip and Adam
 * step: replicas on one backend stay bit-identical.
 */
import type { ResolvedConfig } from '../../shared/model/config.js';
import type { NamedWeights } from '../../shared/model/stage.js';
import { encodeWeights } from '../../shared/protocol/index.js';
import type { Volunteer } from '../tabs/registry.js';
import { askStage, okReply, transferTimeoutMs } from '../tabs/ask-stage.js';
import type { BundleTransfer } from '../tabs/bundle-transfer.js';
import { checkWeights, BundleError } from '../tabs/bundle-check.js';

export interface Reduction {
  /** Bytes moved: every replica's upload and the sum sent back to each. */
  bytes: number;
  /** The replica whose own gradient had the largest norm (blamed if the stage's norm is an outlier). */
  largest: Volunteer;
  /** Replicas that did not take the sum (lost while it was sent): they hold a partial gradient. */
  missed: Volunteer[];
  /** The L2 norm of the sum, computed here from what the replicas uploaded (no tab's word). */
  norm: number;
}

function sumSquares(w: NamedWeights): number {
  let s = 0;
  for (const a of Object.values(w)) for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return s;
}

export async function reduceGradients(
  replicas: readonly Volunteer[],
  stage: number,
  iteration: number,
  config: ResolvedConfig,
  timeoutMs: number,
  reject: (v: Volunteer, reason: string, message: string) => void,
  transfer: BundleTransfer,
  /** The replicas whose gradients are summed (default all): a suspect under audit is left out, but still gets the sum. */
  from: readonly Volunteer[] = replicas,
): Promise<Reduction> {
  let bytes = 0;
  const parts = await Promise.all(
    from.map(async (r) => {
      const raw = await transfer.pull(r, { event: 'get_grads', iteration }, timeoutMs);
      bytes += raw.byteLength;
      try {
        // A replica that ran no hop of some parameter (e.g. it got no microbatch) omits it.
        return checkWeights(config, stage, raw, { partial: true });
      } catch (e) {
        if (e instanceof BundleError) reject(r, 'gradient', e.message);
        throw e;
      }
    }),
  );
  const sum: NamedWeights = {};
  let largest = from[0]!;
  let largestNorm = -1;
  for (const [i, g] of parts.entries()) {
    const n = sumSquares(g);
    // A non-finite gradient is the largest (and blamed), whatever comes after it.
    if (Number.isFinite(largestNorm) && (n > largestNorm || !Number.isFinite(n))) {
      largestNorm = n;
      largest = from[i]!;
    }
    for (const [name, a] of Object.entries(g)) {
      const acc = sum[name];
      if (!acc) sum[name] = Float32Array.from(a);
      else for (let j = 0; j < a.length; j++) acc[j]! += a[j]!;
    }
  }
  const norm = Math.sqrt(sumSquares(sum));
  const bundle = encodeWeights(sum);
  // Every replica gets the same sum; one that does not take it (lost meanwhile) is reported, not
  // waited for: it must not step with its own partial gradient.
  const sent = await Promise.allSettled(replicas.map((r) => askStage(r, 'set_grads', [{ iteration }, bundle], okReply, transferTimeoutMs(timeoutMs, bundle.byteLength))));
  const missed: Volunteer[] = [];
  for (const [i, r] of sent.entries()) {
    if (r.status === 'fulfilled') bytes += bundle.byteLength;
    else missed.push(replicas[i]!);
  }
  if (missed.length === replicas.length) throw (sent[0] as PromiseRejectedResult).reason;
  return { bytes, largest, missed, norm };
}
