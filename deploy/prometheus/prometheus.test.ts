/**
 * deploy/prometheus in Debian's Prometheus (installed by scripts/ensure-packages.sh): promtool
 * checks the scrape config and the alerting rules and runs their unit tests
 * (swarm-rules.test.yml); then a real prometheus scrapes a live coordinator training with Node
 * volunteers, and its HTTP API answers swarm_iteration, swarm_train_loss and a rate of
 * swarm_tokens_total.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Coordinator, DEFAULT_COORDINATOR } from '../../coordinator/server.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../../shared/run-settings.js';
import { startNodeVolunteer, type NodeVolunteer } from '../../testing/node-volunteer.js';
import { freePort, requireCommand, stopProcess, substitute } from '../harness.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 2, microbatches: 2, batch: 1, seqLen: 16, recovery: 'checkfree' };

let dir = '';
let prom: ChildProcess | null = null;
let promLog = '';
let coord: Coordinator | null = null;
const vols: NodeVolunteer[] = [];
let api = '';



interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(q: string): Promise<Sample[]> {
  const r = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(q)}`);
  const body = (await r.json()) as { status: string; data: { resultType: string; result: Sample[] }; error?: string };
  if (body.status !== 'success') throw new Error(`query ${q} failed: ${body.error}`);
  return body.data.result;
}

/** Polls a query until `ok` holds for its first value; returns that value. */
async function waitFor(q: string, ok: (v: number) => boolean, ms: number): Promise<number> {
  const t0 = Date.now();
  let last = 'no result';
  for (;;) {
    if (prom?.exitCode !== null) throw new Error(`prometheus exited (${prom?.exitCode}): ${promLog.slice(-2000)}`);
    const res = await query(q).catch((e: Error) => (last = e.message, []));
    if (res.length > 0) {
      const v = Number(res[0]!.value[1]);
      last = String(v);
      if (ok(v)) return v;
    }
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${q} (last: ${last}); prometheus log: ${promLog.slice(-1500)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async () => {
  const prometheus = requireCommand('prometheus', 'prometheus');
  dir = mkdtempSync(join(tmpdir(), 'swarm-prometheus-'));
  coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, evalEvery: 0, sampleEverySeconds: 0 });
  const target = new URL(await coord.listen()).port;
  for (let i = 0; i < 2; i++) vols.push(await startNodeVolunteer(coord.url, { name: `prom${i}` }));
  let conf = readFileSync(join(HERE, 'prometheus.yml'), 'utf8');
  conf = substitute('deploy/prometheus/prometheus.yml', conf, "targets: ['127.0.0.1:8080']", `targets: ['127.0.0.1:${target}']`);
  conf = substitute('deploy/prometheus/prometheus.yml', conf, 'scrape_interval: 15s', 'scrape_interval: 1s');
  conf = substitute('deploy/prometheus/prometheus.yml', conf, 'evaluation_interval: 15s', 'evaluation_interval: 1s');
  writeFileSync(join(dir, 'prometheus.yml'), conf);
  copyFileSync(join(HERE, 'swarm-rules.yml'), join(dir, 'swarm-rules.yml'));
  const port = await freePort();
  api = `http://127.0.0.1:${port}`;
  prom = spawn(prometheus, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  prom.stdout!.on('data', (c: Buffer) => (promLog += c.toString()));
  prom.stderr!.on('data', (c: Buffer) => (promLog += c.toString()));
}, 60_000);

afterAll(async () => {
  await stopProcess(prom);
  for (const v of vols) v.kill();
  await coord?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('Prometheus (deploy/prometheus)', () => {
  it('promtool: the scrape config and the rules are valid, and the rules\' unit tests pass', () => {
    const promtool = requireCommand('promtool', 'prometheus');
    const run = (...args: string[]) => execFileSync(promtool, args, { cwd: HERE, encoding: 'utf8', stdio: 'pipe' });
    expect(run('check', 'rules', 'swarm-rules.yml')).toContain('SUCCESS: 6 rules found');
    expect(run('check', 'config', 'prometheus.yml')).toContain('SUCCESS');
    expect(run('test', 'rules', 'swarm-rules.test.yml')).toContain('SUCCESS');
  });

  it('scrapes a live coordinator: iteration, train loss, token rate, and the alerting rules are loaded', async () => {
    await waitFor('up{job="swarm"}', (v) => v === 1, 30_000);
    const iteration = await waitFor('swarm_iteration{job="swarm"}', (v) => v >= 2, 90_000);
    expect(iteration).toBeGreaterThanOrEqual(2);
    const loss = await waitFor('swarm_train_loss{job="swarm"}', (v) => Number.isFinite(v) && v > 0, 10_000);
    expect(loss).toBeLessThan(10); // byte-level cross-entropy starts near ln(256) = 5.5
    const rate = await waitFor('rate(swarm_tokens_total{job="swarm"}[5s])', (v) => v > 0, 30_000);
    expect(rate).toBeGreaterThan(0);
    const rules = (await (await fetch(`${api}/api/v1/rules`)).json()) as { data: { groups: { rules: { name: string; health: string }[] }[] } };
    const names = rules.data.groups.flatMap((g) => g.rules.map((r) => `${r.name}:${r.health}`));
    expect(names.sort()).toEqual(['SwarmCoordinatorDown', 'SwarmNoVolunteers', 'SwarmRecoveryStorm', 'SwarmRejectedMessageSpike', 'SwarmRunStalled', 'SwarmStageVacant'].map((n) => `${n}:ok`));
  });
});
