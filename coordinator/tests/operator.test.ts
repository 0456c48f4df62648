/**
 * The operator side: token checks (socket namespace and HTTP), volunteers unable to reach
 * operator actions, controls (pause, strategy, injected failure, churn), sampling through the
 * tabs, model export, and history that survives a coordinator restart.
 */
import { describe, it, expect, afterEach, beforeAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io as ioClient, type Socket as ClientSocket } from 'socket.io-client';
import { Coordinator, DEFAULT_COORDINATOR, type CoordinatorOptions } from '../server.js';
import { startNodeVolunteer, type NodeVolunteer } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, wireOf, type RunSettings } from '../../shared/run-settings.js';
import { useNodeBackend } from '../../trainer/node-backend.js';
import { mulberry32 } from '../../shared/model/rng.js';
import { loadDataset } from '../../trainer/corpus-file.js';
import { evaluate } from '../../trainer/pipeline.js';
import { tokenMatches } from '../operator/operator-auth.js';
import { decodeSafetensors } from '../operator/safetensors.js';
import { lastLogits, readModelFile, stagesFromModelFile } from '../operator/model-file.js';
import { generate } from '../operator/sampling.js';
import { stageParamSpecs } from '../../shared/model/params.js';
import type { Ack, OperatorInit, RunDetail, RunSummary, SampleResult, SwarmSnapshot } from '../../shared/protocol/operator.js';
import { until } from '../../testing/until.js';

const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 2, recovery: 'checkfree' };
const TOKEN = 'test-operator-token-123';

let coords: Coordinator[] = [];
let vols: NodeVolunteer[] = [];
let clients: ClientSocket[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  await useNodeBackend('wasm');
});

afterEach(async () => {
  for (const c of clients) c.close();
  clients = [];
  for (const v of vols) v.kill();
  vols = [];
  for (const c of coords) await c.close();
  coords = [];
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function startCoordinator(extra: Partial<CoordinatorOptions> = {}, s: RunSettings = settings): Promise<{ coord: Coordinator; url: string }> {
  const coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings: s, port: 0, silent: true, evalEvery: 0, operatorToken: TOKEN, maxReplicas: 1, ...extra });
  coords.push(coord);
  return { coord, url: await coord.listen() };
}

async function addVolunteers(url: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) vols.push(await startNodeVolunteer(url, { name: `t${vols.length}` }));
}


/** Connects to /operator; resolves with the socket, or rejects with the refusal message. */
function operator(url: string, auth: Record<string, unknown> = { token: TOKEN }): Promise<ClientSocket> {
  const s = ioClient(`${url}/operator`, { auth, transports: ['websocket'], forceNew: true, reconnection: false });
  clients.push(s);
  return new Promise((resolve, reject) => {
    s.on('connect', () => resolve(s));
    s.on('connect_error', (e) => reject(e));
  });
}

async function call<T extends object>(s: ClientSocket, event: string, ...args: unknown[]): Promise<Ack<T>> {
  return (await s.timeout(120_000).emitWithAck(event, ...args)) as Ack<T>;
}

async function ok<T extends object>(s: ClientSocket, event: string, ...args: unknown[]): Promise<T> {
  const r = await call<T>(s, event, ...args);
  if (!r.ok) throw new Error(`${event} failed: ${r.error}`);
  return r;
}

describe('operator access', () => {
  it('compares tokens in constant time and refuses empty or wrong ones', () => {
    expect(tokenMatches('abc', 'abc')).toBe(true);
    expect(tokenMatches('abd', 'abc')).toBe(false);
    expect(tokenMatches('ab', 'abc')).toBe(false);
    expect(tokenMatches('', 'abc')).toBe(false);
    expect(tokenMatches(undefined, 'abc')).toBe(false);
    expect(tokenMatches(['abc'], 'abc')).toBe(false);
  });

  it('the operator namespace refuses a missing or bad token and accepts the right one', async () => {
    const { url } = await startCoordinator();
    await expect(operator(url, {})).rejects.toThrow('operator token required');
    await expect(operator(url, { token: 'wrong' })).rejects.toThrow('invalid operator token');
    await expect(operator(url, { token: TOKEN + 'x' })).rejects.toThrow('invalid operator token');
    const s = await operator(url);
    const swarm = new Promise<SwarmSnapshot>((r) => s.once('swarm', r));
    const { init } = await ok<{ init: OperatorInit }>(s, 'init');
    expect(init.runId).toBe(coords[0]!.runId);
    expect(init.swarm.stages.map((x) => x.state)).toEqual(['waiting', 'waiting', 'waiting', 'waiting']);
    expect(init.runs.find((r) => r.live)?.id).toBe(init.runId);
    expect((await swarm).runId).toBe(init.runId);
  });

  it('a generated token is random per coordinator and guards the HTTP endpoints', async () => {
    const a = await startCoordinator({ operatorToken: undefined });
    const b = await startCoordinator({ operatorToken: undefined });
    expect(a.coord.operatorToken).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(a.coord.operatorToken).not.toBe(b.coord.operatorToken);
    for (const path of ['runs', 'state', 'export', `runs/${a.coord.runId}`]) {
      const none = await fetch(`${a.url}/api/operator/${path}`);
      expect(none.status, path).toBe(401);
      expect(none.headers.get('www-authenticate')).toMatch(/Bearer/);
      const wrong = await fetch(`${a.url}/api/operator/${path}`, { headers: { authorization: `Bearer ${b.coord.operatorToken}` } });
      expect(wrong.status, path).toBe(401);
      // The right token in the query string is never accepted: URLs end up in logs and history.
      const query = await fetch(`${a.url}/api/operator/${path}?token=${encodeURIComponent(a.coord.operatorToken)}`);
      expect(query.status, path).toBe(401);
    }
    const bearer = await fetch(`${a.url}/api/operator/runs`, { headers: { authorization: `Bearer ${a.coord.operatorToken}` } });
    expect(bearer.status).toBe(200);
    const runs = (await bearer.json()) as RunSummary[];
    expect(runs.some((r) => r.id === a.coord.runId && r.live)).toBe(true);
    const state = await fetch(`${a.url}/api/operator/state`, { headers: { authorization: `Bearer ${a.coord.operatorToken}` } });
    expect(((await state.json()) as SwarmSnapshot).runId).toBe(a.coord.runId);
    const missing = await fetch(`${a.url}/api/operator/runs/nope`, { headers: { authorization: `Bearer ${a.coord.operatorToken}` } });
    expect(missing.status).toBe(404);
  });

  it('wrong tokens are throttled per address, over HTTP and on the operator namespace', async () => {
    const { coord, url } = await startCoordinator();
    const get = (token: string) => fetch(`${url}/api/operator/state`, { headers: { authorization: `Bearer ${token}` } });
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await get(`guess-${i}`)).status);
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(statuses.slice(10)).toEqual([429, 429]);
    const throttled = await get(TOKEN); // while throttled, not even the right token is compared
    expect(throttled.status).toBe(429);
    expect(throttled.headers.get('retry-after')).toMatch(/^\d+$/);
    await expect(operator(url)).rejects.toThrow(/too many wrong operator tokens/);
    const m = await coord.metrics.text();
    expect(m).toMatch(/swarm_operator_auth_failures_total\{result="wrong"\} 10/);
    expect(m).toMatch(/swarm_operator_auth_failures_total\{result="throttled"\} [3-9]/);
  });

  it('the export link is signed, single-use and short-lived; a stranger cannot mint one', async () => {
    const { url } = await startCoordinator();
    const auth = { headers: { authorization: `Bearer ${TOKEN}` } };
    expect((await fetch(`${url}/api/operator/export-link`)).status).toBe(401);
    const { url: link, expiresInSeconds } = (await (await fetch(`${url}/api/operator/export-link`, auth)).json()) as { url: string; expiresInSeconds: number };
    expect(link).toMatch(/^\/api\/operator\/export\?ticket=[A-Za-z0-9_-]{32}$/);
    expect(link).not.toContain(TOKEN);
    expect(expiresInSeconds).toBe(60);
    // Used once (here the swarm has no volunteers, so the export itself answers 409), then dead.
    expect((await fetch(`${url}${link}`)).status).toBe(409);
    expect((await fetch(`${url}${link}`)).status).toBe(401);
    expect((await fetch(`${url}/api/operator/export?ticket=made-up`)).status).toBe(401);
  });

  it('volunteer sockets cannot call operator actions', async () => {
    const { coord, url } = await startCoordinator({ maxIterations: 0 });
    await addVolunteers(url, 4);
    await until(() => coord.scheduler.iteration >= 1, 'training', 120_000);
    const owners = [0, 1, 2, 3].map((s) => coord.stages.owner(s)!.id);
    // A registered volunteer (it said hello) tries operator actions on its own socket.
    const evil = ioClient(url, { transports: ['websocket'], forceNew: true, reconnection: false });
    clients.push(evil);
    const rejected: string[] = [];
    evil.on('rejected', (r: { reason: string; message: string }) => void rejected.push(`${r.reason}: ${r.message}`));
    await new Promise<void>((r) => evil.on('connect', () => r()));
    await new Promise<void>((r) => evil.emit('hello', { backend: 'wasm', adapter: null, throughputGflops: 0.001, agent: 'evil' }, () => r()));
    const acks: unknown[] = [];
    evil.emit('pause', { paused: true }, (x: unknown) => acks.push(x));
    evil.emit('inject_failure', { stage: 1 }, (x: unknown) => acks.push(x));
    evil.emit('set_strategy', { strategy: 'none' }, (x: unknown) => acks.push(x));
    evil.emit('sample', { prompt: 'a', length: 1, temperature: 0 }, (x: unknown) => acks.push(x));
    await new Promise<void>((r) => evil.on('disconnect', () => r()));
    expect(rejected.some((m) => m.startsWith('unknown_event') && m.includes('"pause"'))).toBe(true);
    // A socket that never said hello has no handlers at all.
    const anon = ioClient(url, { transports: ['websocket'], forceNew: true, reconnection: false });
    clients.push(anon);
    await new Promise<void>((r) => anon.on('connect', () => r()));
    anon.emit('pause', { paused: true }, (x: unknown) => acks.push(x));
    anon.emit('inject_failure', { stage: 0 }, (x: unknown) => acks.push(x));
    const before = coord.scheduler.iteration;
    await until(() => coord.scheduler.iteration >= before + 2, 'training continues', 120_000);
    expect(acks).toEqual([]);
    expect(coord.scheduler.paused).toBe(false);
    expect(coord.recovery.strategy.name).toBe('checkfree');
    expect(coord.recovery.done).toHaveLength(0);
    expect([0, 1, 2, 3].map((s) => coord.stages.owner(s)!.id)).toEqual(owners);
  });
});

describe('operator controls', () => {
  it('pauses and resumes, switches strategy, injects a failure and pushes it all live', async () => {
    const { coord, url } = await startCoordinator();
    const s = await operator(url);
    const iterations: number[] = [];
    const events: { kind: string; message: string; data?: Record<string, unknown> }[] = [];
    const snaps: SwarmSnapshot[] = [];
    s.on('iteration', (r: { iteration: number }) => iterations.push(r.iteration));
    s.on('event', (e: (typeof events)[number]) => events.push(e));
    s.on('swarm', (x: SwarmSnapshot) => snaps.push(x));
    await addVolunteers(url, 5);
    await until(() => iterations.length >= 2, 'pushed iterations', 120_000);
    await until(() => snaps.some((x) => x.stages.every((st) => st.state === 'training') && x.spares.length === 1), 'a snapshot with every stage served', 10_000);
    const full = [...snaps].reverse().find((x) => x.stages.every((st) => st.state === 'training'))!;
    expect(full.stages.map((st) => st.stage)).toEqual([0, 1, 2, 3]);
    expect(full.stages[0]!.tab).toMatchObject({ backend: 'wasm', adapter: null });
    expect(events.some((e) => e.kind === 'join')).toBe(true);

    await ok(s, 'pause', { paused: true });
    await until(() => coord.scheduler.state === 'paused', 'paused', 60_000);
    const at = coord.scheduler.iteration;
    await new Promise((r) => setTimeout(r, 1500));
    expect(coord.scheduler.iteration).toBe(at);
    await until(() => snaps.at(-1)?.paused === true && snaps.at(-1)?.status.state === 'paused', 'paused snapshot', 5000);

    const bad = await call(s, 'set_strategy', { strategy: 'bogus' });
    expect(bad.ok).toBe(false);
    await ok(s, 'set_strategy', { strategy: 'none' });
    expect(coord.recovery.strategy.name).toBe('none');
    await ok(s, 'set_strategy', { strategy: 'checkfree' });

    expect(await call(s, 'inject_failure', { stage: 9 })).toMatchObject({ ok: false });
    const victim = coord.stages.owner(2)!.id;
    const r = await ok<{ volunteer: string }>(s, 'inject_failure', { stage: 2 });
    expect(r.volunteer).toBe(victim);
    expect(coord.registry.get(victim)).toBeUndefined();
    await ok(s, 'pause', { paused: false });
    await until(() => coord.recovery.done.length === 1 && coord.scheduler.iteration >= at + 2, 'recovery and more iterations', 120_000);
    expect(coord.recovery.done[0]).toMatchObject({ stage: 2, strategy: 'checkfree', method: 'average' });
    expect(coord.stages.owner(2)!.id).not.toBe(victim);
    const rec = events.filter((e) => e.kind === 'recovery');
    expect(rec.length).toBeGreaterThanOrEqual(2); // lost + recovered
    expect(rec[0]!.data).toMatchObject({ stage: 2, strategy: 'checkfree', iteration: at });
    expect(events.some((e) => e.kind === 'leave' && e.message.includes('operator injected failure'))).toBe(true);
    expect(events.some((e) => e.data?.operator === true && e.data.action === 'pause')).toBe(true);
    // Every pushed iteration is in the store too, with per-stage compute times.
    const stored = coord.store.iterations(coord.runId);
    expect(stored.map((x) => x.iteration)).toEqual(expect.arrayContaining(iterations));
    expect(stored[0]!.stages).toHaveLength(4);
    expect(stored[0]!.stages.every((st) => typeof st.computeMs === 'number' && st.computeMs > 0)).toBe(true);
  });

  it('churn drops exactly the stages its seeded generator picks', async () => {
    const { coord, url } = await startCoordinator();
    await addVolunteers(url, 5);
    const s = await operator(url);
    await ok(s, 'pause', { paused: true });
    await until(() => coord.scheduler.state === 'paused' && coord.placement.spares().length === 1, 'paused with a spare', 120_000);
    // A seed whose first four draws fail exactly one stage at p = 0.3.
    const p = 0.3;
    let seed = 1;
    let picked = -1;
    for (; seed < 1000; seed++) {
      const rand = mulberry32(seed);
      const hits = [0, 1, 2, 3].filter(() => rand() < p);
      if (hits.length === 1) {
        picked = hits[0]!;
        break;
      }
    }
    expect(await call(s, 'churn', { mode: 'iteration', probability: 2, seed })).toMatchObject({ ok: false });
    const victim = coord.stages.owner(picked)!.id;
    const failed = coord.scheduler.iteration + 1;
    await ok(s, 'churn', { mode: 'iteration', probability: p, seed });
    await ok(s, 'pause', { paused: false });
    await until(() => coord.operator.snapshot().churn.failures >= 1, 'a churn failure', 120_000);
    // Off before the next iteration completes (that needs a recovery first), so one draw counts.
    await ok(s, 'churn', { mode: 'off' });
    await until(() => coord.recovery.done.length >= 1, 'the churn failure recovered', 120_000);
    expect(coord.registry.get(victim)).toBeUndefined();
    const lost = coord.events.list('recovery').filter((e) => !e.data?.completed);
    expect(lost[0]!.data).toMatchObject({ stage: picked, iteration: failed });
    expect(coord.events.list('leave').some((e) => e.message.includes(victim) && e.message.includes('churn'))).toBe(true);
    expect(coord.operator.snapshot().churn).toMatchObject({ mode: 'off', failures: 1 });
  });
});

describe('sampling and export', () => {
  it('exports one safetensors file that loads into local stages with the swarm’s validation loss, and samples the same text', async () => {
    const { coord, url } = await startCoordinator({ maxIterations: 3, evalBatches: 2 });
    await addVolunteers(url, 4);
    await until(() => coord.scheduler.iteration >= 3 && coord.scheduler.state === 'paused', '3 iterations', 180_000);
    const s = await operator(url);

    const res = await fetch(`${url}/api/operator/export`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toMatch(/attachment; filename="swarm-.*-it3\.safetensors"/);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const swarmVal = Number(res.headers.get('x-swarm-val-loss'));
    expect(swarmVal).toBeGreaterThan(0);
    expect(swarmVal).toBe(coord.scheduler.lastValLoss);

    // The format: u64 header length, JSON header with F32 tensors under global names.
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + n) % 8).toBe(0);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;
    const config = coord.scheduler.opts.config;
    const globals = [0, 1, 2, 3].flatMap((st) => stageParamSpecs(config, st).map((p) => p.globalName));
    expect(Object.keys(header).filter((k) => k !== '__metadata__').sort()).toEqual([...globals].sort());
    expect(header['embed.weight']).toMatchObject({ dtype: 'F32', shape: [256, 64] });
    expect(header['blocks.3.mlp.w_down']).toMatchObject({ dtype: 'F32', shape: [256, 64] });
    const file = decodeSafetensors(bytes);
    expect(file.metadata).toMatchObject({ iteration: '3', run_id: coord.runId, val_loss: String(swarmVal) });
    expect(readModelFile(bytes).config).toEqual(config);

    // Load back into local stages; the validation loss matches what the swarm measured.
    const { stages } = await stagesFromModelFile(bytes);
    const { dataset } = loadDataset({ seqLen: config.seqLen });
    // Like with like: the local stages send activations over the run's wire encoding, as the swarm did.
    const local = evaluate(stages, dataset.valBatches(2, settings.batch), wireOf(settings));
    expect(Math.abs(local - swarmVal)).toBeLessThan(1e-5);
    // Global names: the same file re-split into 2 stages is the same model (compared unquantized:
    // a 2-stage split quantizes at other hop boundaries).
    const { stages: twoStages } = await stagesFromModelFile(bytes, 2);
    const f32 = evaluate(stages, dataset.valBatches(2, settings.batch), 'f32');
    expect(Math.abs(evaluate(twoStages, dataset.valBatches(2, settings.batch), 'f32') - f32)).toBeLessThan(1e-5);

    // Greedy sampling through the tabs equals greedy sampling with the exported model.
    const req = { prompt: 'Call me Ishmael', length: 12, temperature: 0 };
    const { result } = await ok<{ result: SampleResult }>(s, 'sample', req);
    const expected = await generate((ctx) => lastLogits(stages, ctx), new TextEncoder().encode(req.prompt) as unknown as Int32Array, {
      length: 12,
      temperature: 0,
      seed: 1,
      seqLen: config.seqLen,
    });
    expect(result.tokens).toEqual(expected);
    expect(result.iteration).toBe(3);
    // Temperature sampling is seeded: the same seed gives the same text.
    const a = await ok<{ result: SampleResult }>(s, 'sample', { prompt: '', length: 6, temperature: 1, seed: 7 });
    const b = await ok<{ result: SampleResult }>(s, 'sample', { prompt: '', length: 6, temperature: 1, seed: 7 });
    expect(a.result.tokens).toEqual(b.result.tokens);
    expect(await call(s, 'sample', { prompt: 'x', length: 0, temperature: 0 })).toMatchObject({ ok: false });
    for (const st of [...stages, ...twoStages]) st.dispose();
  });

  it('export refuses while a stage has no volunteer', async () => {
    const { coord, url } = await startCoordinator();
    await addVolunteers(url, 3);
    await until(() => coord.registry.all().length === 3, 'volunteers', 30_000);
    const res = await fetch(`${url}/api/operator/export`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: string }).error).toMatch(/stage 3 has no volunteer/);
    expect(coord.scheduler.paused).toBe(false);
  });
});

describe('history across restarts', () => {
  it('a restarted coordinator with the same data dir lists the past run with its iterations and events', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'swarm-history-'));
    dirs.push(dir);
    const first = await startCoordinator({ dataDir: dir, maxIterations: 2, evalEvery: 2 });
    await addVolunteers(first.url, 4);
    await until(() => first.coord.scheduler.iteration >= 2 && first.coord.scheduler.lastValLoss !== null, '2 iterations', 120_000);
    const oldId = first.coord.runId;
    const oldVal = first.coord.scheduler.lastValLoss;
    for (const v of vols) v.kill();
    vols = [];
    await first.coord.close();
    coords = coords.filter((c) => c !== first.coord);

    const second = await startCoordinator({ dataDir: dir });
    expect(second.coord.runId).not.toBe(oldId);
    const s = await operator(second.url);
    const { runs } = await ok<{ runs: RunSummary[] }>(s, 'runs');
    const old = runs.find((r) => r.id === oldId)!;
    expect(old).toMatchObject({ live: false, iterations: 2, lastValLoss: oldVal });
    expect(runs.find((r) => r.live)!.id).toBe(second.coord.runId);
    const { detail } = await ok<{ detail: RunDetail }>(s, 'run', { runId: oldId });
    expect(detail.iterations.map((r) => r.iteration)).toEqual([1, 2]);
    expect(detail.iterations[1]!.valLoss).toBe(oldVal);
    expect(detail.events.some((e) => e.kind === 'join')).toBe(true);
    expect(detail.events.some((e) => e.kind === 'run' && e.message.includes('--max-iterations'))).toBe(true);
    const http = await fetch(`${second.url}/api/operator/runs/${oldId}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(((await http.json()) as RunDetail).iterations).toHaveLength(2);
  });
});
