/**
 * `--config swarm.json`: settings from a JSON file whose keys are the flags' names (see flags.ts),
 * e.g. `{"port": 443, "tls-cert": "/etc/ssl/swarm.pem", "preset": "base"}`. Unknown keys, keys
 * that are command-line options rather than settings, and values of the wrong type are errors
 * that name the key.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../../shared/model/config.js';
import { checkConfigObject, mergeSettings, parseFlags, type FlagValues } from './flags.js';

/** A config file's settings. */
export function readConfigFile(path: string): FlagValues {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read --config ${path}: ${(e as Error).message}`);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  return checkConfigObject(obj, path);
}

/** The effective settings of a command line: defaults < its --config file < its flags. */
export function resolveSettings(argv: string[]): { values: FlagValues; cli: FlagValues } {
  const cli = parseFlags(argv);
  const file = typeof cli.config === 'string' ? readConfigFile(cli.config) : {};
  return { values: mergeSettings(file, cli), cli };
}
