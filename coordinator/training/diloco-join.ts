/**
 * `--dp diloco`: a tab that joins a group (or is re-synced to it) receives, besides the stage's
 * weights and Adam state, the group's outer state: synced weights, outer momentum and sync count
 * (shared/dp/diloco-state.ts). It is pulled in chunks from a sibling (`get_weights` parts
 * 'diloco', bundle-transfer.ts), checked against the stage's parameter count and finiteness,
 * re-encoded from the checked values and handed on with `dp_set_state`. Joins happen only right
 * after a sync (Placement's `joinsAllowed`), when a sibling's weights equal its synced weights, so
 * the joiner does not count its donor's unsynced progress twice.
 */
import type { ResolvedConfig } from '../../shared/model/config.js';
import { stageParamSpecs } from '../../shared/model/params.js';
import { flatLength } from '../../shared/dp/flat-weights.js';
import { decodeDilocoState, encodeDilocoState } from '../../shared/dp/diloco-state.js';
import { syncOkReplySchema } from '../../shared/dp/sync-messages.js';
import { stateBundleLimits } from '../../shared/protocol/state-bundle-limits.js';
import { AskError, askStage, ASK_TIMEOUT_MS, transferTimeoutMs } from '../tabs/ask-stage.js';
import type { BundleTransfer } from '../tabs/bundle-transfer.js';
import type { Volunteer } from '../tabs/registry.js';

/** Copies `source`'s diloco state of `stage` to `target`; returns the bytes moved (up and down). Throws on any failure. */
export async function copyDilocoState(transfer: BundleTransfer, config: ResolvedConfig, stage: number, source: Volunteer, target: Volunteer): Promise<number> {
  const { bundle, pulledBytes } = await pullDilocoState(transfer, config, stage, source);
  await sendDilocoState(transfer, target, stage, bundle);
  return pulledBytes + bundle.byteLength;
}

/**
 * `source`'s diloco state of `stage`, checked and re-encoded from the checked values (what every
 * joiner of a fan-out gets, join-fanout.ts). Throws on any failure.
 */
export async function pullDilocoState(transfer: BundleTransfer, config: ResolvedConfig, stage: number, source: Volunteer): Promise<{ bundle: Uint8Array; pulledBytes: number }> {
  const raw = await transfer.pull(source, { event: 'get_weights', parts: 'diloco' }, ASK_TIMEOUT_MS.state);
  const specs = stageParamSpecs(config, stage);
  return { bundle: encodeDilocoState(decodeDilocoState(raw, flatLength(specs), stateBundleLimits(specs, 2))), pulledBytes: raw.byteLength };
}

/**
 * Hands a checked diloco state bundle to `target` (`dp_set_state`); a large one goes ahead in
 * pieces (bundle-push.ts: the heartbeat's pings pass). Throws when it is refused or not acknowledged.
 */
export async function sendDilocoState(transfer: BundleTransfer, target: Volunteer, stage: number, bundle: Uint8Array): Promise<void> {
  const staged = await transfer.push(target, bundle);
  const r = staged
    ? await askStage(target, 'dp_set_state', [{ stage, staged: true }, new Uint8Array(0)], syncOkReplySchema, ASK_TIMEOUT_MS.state)
    : await askStage(target, 'dp_set_state', [{ stage }, bundle], syncOkReplySchema, transferTimeoutMs(ASK_TIMEOUT_MS.state, bundle.byteLength));
  if ('error' in r) throw new AskError('refused', `${target.id} refused dp_set_state: ${r.error}`);
}
