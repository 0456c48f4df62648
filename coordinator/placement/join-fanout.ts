/**
 * Joins that scale (issue 21): when several tabs join the same stage, the stage's state is pulled
 * ONCE from one of its holders, checked, and the same checked bundle is sent to every joiner, in
 * parallel up to a concurrency limit. N joiners cost one pull plus N pushes instead of N pulls and
 * N pushes one after another (at `base` a state with the diloco outer state is 170 MB: on 50 Mbit/s
 * links one sequential join took ~1 min, so 28 joiners took longer than the benchmark waited).
 *
 * - The holder is chosen in rotation over the stage's replicas (`firstHolder`), so successive
 *   fan-outs spread their pulls over a group's tabs; a holder whose pull fails (silent, refusing,
 *   a bundle that fails its check) is skipped and the next is asked.
 * - A joiner that fails or leaves mid-push does not fail the others: each push settles on its own.
 * - What is pulled is whatever `pull` returns, already checked (the caller's check, e.g.
 *   checkStageState and the diloco outer state's decode): nothing from a tab is handed on unchecked.
 *
 * Pure orchestration: no sockets here, the pull and the push are passed in (placement.ts).
 */

export interface FanoutTiming {
  /** ms the pull took (from the holder that delivered; failed holders before it included). */
  pullMs: number;
  /** ms from the end of the pull to the end of this joiner's push. */
  pushMs: number;
}

export type JoinOutcome<H> =
  | { kind: 'joined'; holder: H; timing: FanoutTiming }
  /** The push to this joiner failed (or it left); `why` says how. */
  | { kind: 'failed'; holder: H; why: string; timing: FanoutTiming }
  /** No holder delivered the state: nothing was sent, the joiner may try again later. */
  | { kind: 'no-source'; why: string };

export interface FanoutResult<J, H> {
  /** The holder whose state was sent (null when none delivered). */
  holder: H | null;
  /** Holders asked and why each failed, in order. */
  failedHolders: { holder: H; why: string }[];
  outcomes: Map<J, JoinOutcome<H>>;
}

export interface FanoutSteps<J, H, S> {
  /** The checked state of the stage from `holder`; throws when it cannot be had. */
  pull: (holder: H) => Promise<S>;
  /** Hands `state` to `joiner`: true when it now serves the stage, false or a throw when not. */
  push: (joiner: J, state: S, holder: H) => Promise<boolean>;
  /** At most this many pushes at once (>= 1). */
  concurrency: number;
  /** Clock (ms), injectable for tests. */
  now?: () => number;
}

/** Default number of pushes in flight per stage. */
export const JOIN_PUSH_CONCURRENCY = 8;

/** `holders` rotated so that the `turn`-th fan-out asks a different holder first. */
export function firstHolder<H>(holders: readonly H[], turn: number): H[] {
  if (holders.length === 0) return [];
  const k = ((turn % holders.length) + holders.length) % holders.length;
  return [...holders.slice(k), ...holders.slice(0, k)];
}

/** Runs `fn` over `items` with at most `limit` calls in flight; never rejects (fn's own errors are fn's to catch). */
export async function boundedEach<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  if (!(Number.isInteger(limit) && limit >= 1)) throw new RangeError(`concurrency must be an integer >= 1, got ${limit}`);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * One pull from the first of `holders` that delivers, then a push to every joiner (bounded).
 * Resolves when every push has settled; never rejects for a failing holder or joiner.
 */
export async function fanOutJoin<J, H, S>(holders: readonly H[], joiners: readonly J[], steps: FanoutSteps<J, H, S>): Promise<FanoutResult<J, H>> {
  const now = steps.now ?? Date.now;
  const outcomes = new Map<J, JoinOutcome<H>>();
  const failedHolders: { holder: H; why: string }[] = [];
  if (joiners.length === 0) return { holder: null, failedHolders, outcomes };
  const t0 = now();
  let got: { holder: H; state: S } | null = null;
  for (const h of holders) {
    try {
      got = { holder: h, state: await steps.pull(h) };
      break;
    } catch (e) {
      failedHolders.push({ holder: h, why: (e as Error).message });
    }
  }
  if (!got) {
    const why = holders.length === 0 ? 'the stage has no holder' : `no holder delivered the state: ${failedHolders.map((f) => f.why).join('; ')}`;
    for (const j of joiners) outcomes.set(j, { kind: 'no-source', why });
    return { holder: null, failedHolders, outcomes };
  }
  const { holder, state } = got;
  const pulled = now();
  const pullMs = pulled - t0;
  await boundedEach(joiners, steps.concurrency, async (j) => {
    try {
      const ok = await steps.push(j, state, holder);
      const timing = { pullMs, pushMs: now() - pulled };
      outcomes.set(j, ok ? { kind: 'joined', holder, timing } : { kind: 'failed', holder, why: 'the joiner did not take the state', timing });
    } catch (e) {
      outcomes.set(j, { kind: 'failed', holder, why: (e as Error).message, timing: { pullMs, pushMs: now() - pulled } });
    }
  });
  return { holder, failedHolders, outcomes };
}
