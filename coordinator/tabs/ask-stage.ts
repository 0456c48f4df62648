/**
 * Every request the coordinator makes of a tab and waits for (assign, grad_norm, step,
 * get_weights, put_replica, infer) goes through askStage: the reply is validated against a
 * schema, a refusal (`{error}` or `{ok: false}`) and a timeout become an AskError, and a socket
 * that disconnects fails its pending requests at once instead of waiting out their timeouts.
 */
import { z } from 'zod';
import type { ServerToVolunteer } from '../../shared/protocol/events.js';
import type { Volunteer } from './registry.js';

/** How long a tab may take to answer each kind of request. */
export const ASK_TIMEOUT_MS = {
  /** Build a stage (and load its weights) for an assignment, or take note of being a spare. */
  assign: 30_000,
  /** Send a stage's weights, or a replica it holds. */
  weights: 30_000,
  /** Store a replica of a neighbour's embedding or head. */
  replica: 30_000,
  /** Send or load a full training state (weights and Adam moments: three times the bytes). */
  state: 60_000,
} as const;

/**
 * The slowest link a tab may have and still move bundles: 2 Mbit/s. A request that carries or
 * returns a bundle gets its base timeout plus the bundle's time at this rate, so a `base` state
 * (~100 MB) can cross a home link (it takes 80 s at 10 Mbit/s), while a silent tab still fails
 * after the base timeout (bundle-transfer.ts waits for the first chunk that long).
 */
export const MIN_LINK_BYTES_PER_SEC = 250_000;

/** The timeout of a request moving `bytes`: its base plus the bytes' time on the slowest link allowed. */
export function transferTimeoutMs(baseMs: number, bytes: number): number {
  return baseMs + Math.ceil((1000 * bytes) / MIN_LINK_BYTES_PER_SEC);
}

export type AskFailure = 'timeout' | 'disconnected' | 'refused' | 'invalid';

export class AskError extends Error {
  constructor(readonly failure: AskFailure, message: string) {
    super(message);
    this.name = 'AskError';
  }
}

const refusalSchema = z.union([z.strictObject({ error: z.string().max(2000) }), z.strictObject({ ok: z.literal(false), error: z.string().max(2000) })]);

/** A binary reply (weights, replicas, inference frames). */
export const bytesReply = z.instanceof(Uint8Array);
/** An `{ok: true}` reply (assign, put_replica). */
export const okReply = z.strictObject({ ok: z.literal(true) });

type Args<E extends keyof ServerToVolunteer> = ServerToVolunteer[E] extends (...a: infer A) => void
  ? A extends [...infer Rest, (r: never) => void]
    ? Rest
    : A
  : never;

export function askStage<E extends keyof ServerToVolunteer, T>(
  owner: Volunteer,
  event: E,
  args: Args<E>,
  schema: z.ZodType<T>,
  timeoutMs: number,
): Promise<T> {
  const socket = owner.socket;
  if (!socket.connected) return Promise.reject(new AskError('disconnected', `${owner.id} is not connected (${event})`));
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const settle = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('disconnect', onDisconnect);
      f();
    };
    const onDisconnect = () => settle(() => reject(new AskError('disconnected', `${owner.id} disconnected before answering ${event}`)));
    const timer = setTimeout(() => settle(() => reject(new AskError('timeout', `${owner.id} did not answer ${event} within ${timeoutMs} ms`))), timeoutMs);
    socket.once('disconnect', onDisconnect);
    const emit = socket.emit as unknown as (event: string, ...rest: unknown[]) => void;
    emit.call(socket, event, ...args, (reply: unknown) =>
      settle(() => {
        const parsed = schema.safeParse(reply);
        if (parsed.success) return resolve(parsed.data);
        const refusal = refusalSchema.safeParse(reply);
        if (refusal.success) return reject(new AskError('refused', `${owner.id} refused ${event}: ${refusal.data.error}`));
        reject(new AskError('invalid', `${owner.id} answered ${event} with an invalid reply: ${parsed.error.issues[0]?.message ?? 'bad reply'}`));
      }),
    );
  });
}
