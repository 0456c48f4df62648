/**
 * The real `coordinator/main.ts` process: the one-line crash (`GET // HTTP/1.1`) and
 * friends leave it serving; `--operator-token-file` keeps the token out of its output;
 * `--public-host` names are served and others refused. The process is killed even if this fails.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnChild, killChildren, freePort } from '../../testing/child.js';
import { rawRequest } from '../../testing/raw-http.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const dirs: string[] = [];

afterEach(async () => {
  await killChildren();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('coordinator process', () => {
  it('survives hostile request lines, keeps a token file secret, serves --public-host names only', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'swarm-main-'));
    dirs.push(dir);
    const token = 'file-token-' + 'x'.repeat(24);
    writeFileSync(join(dir, 'token'), `${token}\n`);
    const port = await freePort();
    const child = spawnChild(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'coordinator/main.ts'), '--port', String(port), '--data-dir', join(dir, 'data'), '--skip-build', '--new-run',
        '--operator-token-file', join(dir, 'token'), '--public-host', 'swarm.example.org'],
      { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'info', OPERATOR_TOKEN: '' } },
    );
    const t0 = Date.now();
    while (!child.output().includes('coordinator ready')) {
      if (Date.now() - t0 > 60_000) throw new Error(`coordinator did not start:\n${child.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const get = (target: string, host = `localhost:${port}`, extra = '') => rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n${extra}Connection: close\r\n\r\n`);
    // The example, which used to end the process, and its relatives.
    for (const target of ['//', '//x/y', 'http://localhost:99999/', '/%zz']) expect((await get(target)).status, target).toBe(400);
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/healthz', 'swarm.example.org')).status).toBe(200);
    expect((await get('/metrics', `evil.example:${port}`)).status).toBe(421);
    expect((await get('/api/operator/state', `localhost:${port}`, `Authorization: Bearer ${token}\r\n`)).status).toBe(200);
    expect(child.output()).not.toContain(token);
    expect(child.output()).toMatch(/dashboard: .*\/dashboard {2}\(token: the one in /);
    expect(child.proc.exitCode).toBeNull(); // still running
  });

  it('refuses a token file that is missing or too short, with a clear error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'swarm-main-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'short'), 'abc\n');
    for (const [file, msg] of [[join(dir, 'nope'), /cannot read/], [join(dir, 'short'), /at least 16 characters/]] as const) {
      const child = spawnChild(process.execPath, ['--import', 'tsx', join(ROOT, 'coordinator/main.ts'), '--skip-build', '--data-dir', join(dir, 'data'), '--operator-token-file', file], { cwd: ROOT });
      expect(await child.exited).toBe(2);
      expect(child.output()).toMatch(msg);
    }
  });
});
