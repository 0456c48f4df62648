/** Shared by the coordinator's Node tests. */

/** Polls `cond` every 25 ms until it holds; fails with `what` after `ms`. */
export async function until(cond: () => boolean, what: string, ms = 120_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
