/**
 * Checks `--skip-ratio` against the run's settings before the coordinator starts: a ratio in
 * [0, 1) (skip-paths.ts skipCount), and no skip paths with `--dp diloco` (its replicas step
 * apart, and the local trainer, the reference, runs skip paths with exact data parallelism only).
 * With fewer than 3 stages there is nothing to skip: the ratio is accepted and changes nothing.
 */
import { ConfigError } from '../../shared/model/config.js';
import { dpOf, type RunSettings } from '../../shared/run-settings.js';

export function checkSkipOptions(skipRatio: number, settings: RunSettings): void {
  if (!Number.isFinite(skipRatio) || skipRatio < 0 || skipRatio >= 1) throw new ConfigError(`--skip-ratio must be in [0, 1), got ${skipRatio}`);
  if (skipRatio > 0 && dpOf(settings).mode !== 'exact') throw new ConfigError('--skip-ratio runs with --dp exact (a skipped stage takes no step, which diloco replicas would drift on)');
}
