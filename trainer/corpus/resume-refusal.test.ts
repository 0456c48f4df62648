/**
 * A restarted coordinator refuses to resume a run on another corpus or tokenizer: the real
 * `npm start` process (coordinator/main.ts) trains a few iterations with 4 Node volunteers on
 * one corpus, is killed, and is started again on the same data directory with another corpus, then
 * another tokenizer; each time it exits with a clear error instead of training the run's weights
 * on other tokens. With `--new-run` it starts afresh.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNodeVolunteer, type NodeVolunteer } from '../../testing/node-volunteer.js';
import { spawnChild, killChildren, freePort } from '../../testing/child.js';
import { DEFAULT_CORPUS } from '../corpus-file.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const vols: NodeVolunteer[] = [];

afterEach(async () => {
  for (const v of vols.splice(0)) v.kill();
  await killChildren();
});

function coordinator(port: number, dataDir: string, extra: string[]) {
  return spawnChild(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'coordinator/main.ts'), '--port', String(port), '--data-dir', dataDir, '--skip-build', '--stages', '4',
      '--microbatches', '2', '--batch', '2', '--eval-every', '0', '--recovery', 'checkfree', '--max-replicas', '1', ...extra],
    { cwd: ROOT },
  );
}

async function iteration(url: string): Promise<number> {
  try {
    return ((await (await fetch(`${url}/healthz`)).json()) as { iteration: number }).iteration;
  } catch {
    return -1;
  }
}

describe('resume checks the data', () => {
  it('refuses another corpus or tokenizer with a clear error; --new-run starts afresh', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'resume-data-'));
    const text = readFileSync(DEFAULT_CORPUS, 'utf8');
    const a = join(dir, 'a.txt');
    const b = join(dir, 'b.txt');
    writeFileSync(a, text.slice(0, 200_000));
    writeFileSync(b, text.slice(200_000, 400_000));
    const port = await freePort();
    const url = `http://localhost:${port}`;
    const first = coordinator(port, join(dir, 'data'), ['--data', a]);
    const t0 = Date.now();
    while ((await iteration(url)) < 0) {
      if (Date.now() - t0 > 120_000) throw new Error(`coordinator did not start\n${first.output()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    for (let i = 0; i < 4; i++) vols.push(await startNodeVolunteer(url, { name: `t${i}` }));
    while ((await iteration(url)) < 2) {
      if (Date.now() - t0 > 200_000) throw new Error(`no training\n${first.output()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await first.kill('SIGKILL');
    for (const v of vols.splice(0)) v.kill();

    const otherCorpus = coordinator(port, join(dir, 'data'), ['--data', b]);
    expect(await otherCorpus.exited).toBe(2);
    expect(otherCorpus.output()).toMatch(/error: cannot resume run \w+ in .*: the run was trained on another corpus \(SHA-256 [0-9a-f]{12}, this --data is [0-9a-f]{12}\); pass its --data and --tokenizer, or --new-run/);

    const otherTokenizer = coordinator(port, join(dir, 'data'), ['--data', a, '--tokenizer', 'bpe:300']);
    expect(await otherTokenizer.exited).toBe(2);
    expect(otherTokenizer.output()).toMatch(/error: cannot resume run .*: the run was trained with tokenizer byte .* not bpe:300/);

    const fresh = coordinator(port, join(dir, 'data'), ['--data', b, '--new-run']);
    const t1 = Date.now();
    while ((await iteration(url)) < 0) {
      if (Date.now() - t1 > 120_000) throw new Error(`--new-run did not start\n${fresh.output()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(fresh.output()).not.toMatch(/resuming run/);
  });
});
