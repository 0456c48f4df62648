/**
 * The socket messages of a diloco sync (coordinator -> tab, each with an ack), validated with zod
 * like shared/protocol/events.ts. The coordinator drives; the tab answers (diloco-sync-session.ts):
 *
 *   dp_sync_get   { iteration, chunk }            ack { frame }     uplink chunk frame (sync-chunks.ts)
 *   dp_sync_put   { iteration, chunk }, frame     ack { ok: true }  averaged chunk frame
 *   dp_sync_apply { iteration }                   ack { ok: true, syncs }  outer step taken
 *   dp_state      {}                              ack { bundle }    diloco-state.ts, for a joining sibling
 *   dp_set_state  {}, bundle                      ack { ok: true }
 *
 * Failures ack { error }. Every frame is checked against the sync's plan by the receiver.
 */
import { z } from 'zod';

const iteration = z.number().int().min(0).max(0xffffffff);
const chunk = z.number().int().min(0).max(0xffff);
const bytes = z.union([z.instanceof(Uint8Array), z.instanceof(ArrayBuffer)]);

export const syncChunkRequestSchema = z.strictObject({ iteration, chunk });
export const syncApplyRequestSchema = z.strictObject({ iteration });
export const syncGetReplySchema = z.union([z.strictObject({ frame: bytes }), z.strictObject({ error: z.string().max(1000) })]);
export const syncOkReplySchema = z.union([z.strictObject({ ok: z.literal(true) }), z.strictObject({ error: z.string().max(1000) })]);
export const syncApplyReplySchema = z.union([z.strictObject({ ok: z.literal(true), syncs: z.number().int().min(0) }), z.strictObject({ error: z.string().max(1000) })]);

export type SyncChunkRequest = z.infer<typeof syncChunkRequestSchema>;
export type SyncApplyRequest = z.infer<typeof syncApplyRequestSchema>;
