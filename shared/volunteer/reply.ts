/**
 * How the volunteer agent answers a coordinator request: run the work (which validates its input
 * and throws on anything wrong), then acknowledge with what it returned, or with `failure(message)`
 * when it threw, synchronously or not. One place for the pattern every acknowledged event shares.
 */

/** `{ error }`: the failure reply of requests that answer with a value. */
export const asError = (error: string): { error: string } => ({ error });
/** `{ ok: false, error }`: the failure reply of requests that answer with an OkAck. */
export const asNotOk = (error: string): { ok: false; error: string } => ({ ok: false, error });
/** The success reply of requests that answer with an OkAck. */
export const OK = { ok: true } as const;

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Acknowledge `work()`'s result, or `failure(message)` if it throws or rejects. Synchronous work is
 * acknowledged before this returns; the promise settles (never rejects) once `ack` has been called.
 */
export function reply<R, F>(ack: (r: R | F) => void, work: () => R | Promise<R>, failure: (message: string) => F): Promise<void> {
  let result: R | Promise<R>;
  try {
    result = work();
  } catch (e) {
    ack(failure(messageOf(e)));
    return Promise.resolve();
  }
  if (result instanceof Promise) {
    return result.then(
      (r) => {
        ack(r);
      },
      (e: unknown) => {
        ack(failure(messageOf(e)));
      },
    );
  }
  ack(result);
  return Promise.resolve();
}
