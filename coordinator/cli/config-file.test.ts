/** --config files and the flag table: same keys as the flags, flags override, unknown keys named. */
import { describe, it, expect } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FLAGS, checkConfigObject, helpText, mergeSettings, parseFlags, printableSettings } from './flags.js';
import { readConfigFile, resolveSettings } from './config-file.js';

const run = promisify(execFile);

function tempConfig(obj: unknown): { path: string; done(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'swarm-config-'));
  const path = join(dir, 'swarm.json');
  writeFileSync(path, typeof obj === 'string' ? obj : JSON.stringify(obj));
  return { path, done: () => rmSync(dir, { recursive: true, force: true }) };
}

describe('config file', () => {
  it('takes the flags\' names as keys; flags override the file, the file overrides defaults', () => {
    const c = tempConfig({ port: 9000, preset: 'small', 'trust-proxy': true, 'checkpoint-every': 'auto', recovery: 'checkfree' });
    try {
      const { values } = resolveSettings(['--config', c.path, '--port', '9001']);
      expect(values.port).toBe(9001);
      expect(values.preset).toBe('small');
      expect(values['trust-proxy']).toBe(true);
      expect(values['checkpoint-every']).toBe('auto');
      expect(values.recovery).toBe('checkfree');
      expect(values.stages).toBe(FLAGS.stages.default);
    } finally {
      c.done();
    }
  });

  it('names an unknown key, a command-line option and a wrongly typed value', () => {
    expect(() => checkConfigObject({ prot: 1 }, 'f.json')).toThrow(/unknown key "prot"/);
    expect(() => checkConfigObject({ 'print-config': true }, 'f.json')).toThrow(/"print-config" is a command-line option/);
    expect(() => checkConfigObject({ port: '80' }, 'f.json')).toThrow(/"port" must be a number/);
    expect(() => checkConfigObject({ 'trust-proxy': 'yes' }, 'f.json')).toThrow(/"trust-proxy" must be true or false/);
    expect(() => checkConfigObject({ recovery: 'magic' }, 'f.json')).toThrow(/"recovery" must be one of/);
    expect(() => checkConfigObject([1], 'f.json')).toThrow(/JSON object/);
    const c = tempConfig('{"port": 80,');
    try {
      expect(() => readConfigFile(c.path)).toThrow(/not valid JSON/);
    } finally {
      c.done();
    }
    expect(() => readConfigFile('/nonexistent/swarm.json')).toThrow(/cannot read --config/);
  });

  it('rejects bad flags the same way', () => {
    expect(() => parseFlags(['--port', 'eighty'])).toThrow(/--port must be a number/);
    expect(() => parseFlags(['--no-such-flag'])).toThrow(/no-such-flag/);
    expect(() => parseFlags(['--tls', 'home-made'])).toThrow(/--tls must be one of: self-signed/);
    expect(() => parseFlags(['--dp', 'gossip'])).toThrow(/--dp must be one of: exact, diloco/);
    expect(() => parseFlags(['--dp-wire', 'int4'])).toThrow(/--dp-wire must be one of/);
    expect(parseFlags(['--dp', 'diloco', '--dp-every', '5', '--outer-lr', '0.5'])).toEqual({ dp: 'diloco', 'dp-every': 5, 'outer-lr': 0.5 });
  });

  it('reads PORT and OPERATOR_TOKEN under the file', () => {
    expect(mergeSettings({}, {}, { PORT: '7000' }).port).toBe(7000);
    expect(mergeSettings({ port: 7001 }, {}, { PORT: '7000' }).port).toBe(7001);
    expect(printableSettings(mergeSettings({}, {}, { OPERATOR_TOKEN: 'secret' }))['operator-token']).toBe('(set; not shown)');
  });

  it('--help lists every flag of the table, and --print-config output is itself a valid config file', async () => {
    const help = helpText();
    for (const name of Object.keys(FLAGS)) expect(help).toContain(`--${name}`);
    const c = tempConfig({ port: 9100, 'max-iterations': 5, weighting: 'uniform', dp: 'diloco', 'dp-every': 10 });
    try {
      const { stdout } = await run('npx', ['tsx', 'coordinator/main.ts', '--config', c.path, '--max-iterations', '7', '--print-config'], { cwd: join(import.meta.dirname, '../..'), timeout: 60_000 });
      const printed = JSON.parse(stdout) as Record<string, unknown>;
      expect(printed).toMatchObject({ port: 9100, 'max-iterations': 7, weighting: 'uniform', preset: 'tiny', dp: 'diloco', 'dp-every': 10, 'outer-lr': 0.7, 'outer-momentum': 0.9, 'dp-wire': 'int8' });
      expect(checkConfigObject(printed, 'printed')).toMatchObject({ port: 9100 });
      const bad = tempConfig({ prot: 1 });
      try {
        const err = await run('npx', ['tsx', 'coordinator/main.ts', '--config', bad.path], { cwd: join(import.meta.dirname, '../..'), timeout: 60_000 }).catch((e: { code: number; stderr: string }) => e);
        expect(err).toMatchObject({ code: 2 });
        expect((err as { stderr: string }).stderr).toContain('unknown key "prot"');
      } finally {
        bad.done();
      }
    } finally {
      c.done();
    }
  });
});
