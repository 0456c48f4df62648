/**
 * Hostile input: a corpus of generated malformed messages (fast-check) fired at a coordinator
 * while a swarm trains. The coordinator must stay up, training must go on, no stage may see a
 * NaN, and every bad message must be counted in /metrics.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest';
import fc from 'fast-check';
import { io as ioClient, type Socket } from 'socket.io-client';
import WebSocket from 'ws';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { maxMessageBytes } from '../gateway/message-limits.js';
import { startNodeVolunteer, type NodeVolunteer } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS } from '../../shared/run-settings.js';
import { encodeTensorFrame } from '../../shared/protocol/codec.js';
import { outMetaSchema, statsSchema, capabilitiesSchema } from '../../shared/protocol/events.js';
import { until } from '../../testing/until.js';
import { rawRequest } from '../../testing/raw-http.js';

let coord: Coordinator;
let url: string;
const vols: NodeVolunteer[] = [];

beforeAll(async () => {
  coord = new Coordinator({
    ...DEFAULT_COORDINATOR,
    maxReplicas: 1, // one tab per stage: extra tabs are spares (these tests exercise the strategy rung)
    connectionRate: 1e6, // the attackers reconnect after every disconnect, all from this one address
    settings: { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 2, recovery: 'checkfree' },
    port: 0,
    silent: true,
    evalEvery: 0,
    graceMs: 200,
    taskTimeoutMs: 5000,
  });
  url = await coord.listen();
  for (let i = 0; i < 5; i++) vols.push(await startNodeVolunteer(url, { name: `t${i}` }));
});

afterAll(async () => {
  for (const v of vols) v.kill();
  await coord.close();
});


async function rejectedHttp(): Promise<Record<string, number>> {
  const text = await coord.metrics.text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/swarm_http_rejected_total\{reason="([^"]+)"\} (\d+)/g)) out[m[1]!] = Number(m[2]);
  return out;
}

/** Roughly the bytes a message's arguments take on the wire (binary payloads counted exactly). */
function approxBytes(args: unknown[]): number {
  let n = 0;
  const walk = (x: unknown): void => {
    if (x instanceof Uint8Array) n += x.byteLength;
    else if (typeof x === 'string') n += x.length;
    else if (Array.isArray(x)) x.forEach(walk);
    else if (x && typeof x === 'object') for (const [k, v] of Object.entries(x)) (n += k.length), walk(v);
    else n += 8;
  };
  args.forEach(walk);
  return n;
}

async function rejectedTotal(): Promise<Record<string, number>> {
  const text = await coord.metrics.text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/swarm_rejected_messages_total\{reason="([^"]+)"\} (\d+)/g)) out[m[1]!] = Number(m[2]);
  return out;
}

const frame = (over: Partial<Parameters<typeof encodeTensorFrame>[0]> = {}, n = 2 * 64 * 64) =>
  encodeTensorFrame({ kind: 'act', iteration: 0, microbatch: 0, hop: 0, fromStage: 1, toStage: -1, dtype: 'float32', shape: [2, 64, 64], ...over }, new Float32Array(n));

/** One malformed message: [event, ...args]; `registered` says whether it is sent after a valid hello. */
type Bad = { event: string; args: unknown[]; registered: boolean };

const junk = fc.oneof(
  fc.anything({ maxDepth: 2 }),
  fc.uint8Array({ maxLength: 64 }).map((b) => b),
  fc.constantFrom(NaN, Infinity, -1, 2 ** 40, '', null),
);

const badOut = fc.oneof(
  // schema violations
  junk.filter((m) => !outMetaSchema.safeParse(m).success).map((m) => [m, null]),
  // well-formed metadata from a tab that has no stage (spare) / for tasks never sent / out of range ids
  fc
    .record({
      attempt: fc.integer({ min: 10_000, max: 2 ** 40 }),
      iteration: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
      mb: fc.integer({ min: 0, max: 0xffff }),
      dir: fc.constantFrom('F', 'B', 'E'),
      hop: fc.integer({ min: 0, max: 0xffff }),
      computeMs: fc.double({ min: 0, max: 1000, noNaN: true }),
    })
    .map((m) => [m, fc.sample(fc.constantFrom(null, frame(), frame({ fromStage: 3 }), new Uint8Array(2_000_000)), 1)[0]]),
  // binary payload that is not binary, or truncated/corrupt frames
  fc.tuple(fc.constant({ attempt: 99_999, iteration: 0, mb: 0, dir: 'F', hop: 0, computeMs: 1 }), fc.oneof(fc.string(), fc.uint8Array({ maxLength: 100 }), fc.constant(frame().slice(0, 50)))),
);

const corpus: fc.Arbitrary<Bad> = fc.oneof(
  badOut.map(([meta, payload]) => ({ event: 'out', args: [meta, payload], registered: true })),
  junk.filter((x) => !statsSchema.safeParse(x).success).map((x) => ({ event: 'stats', args: [x], registered: true })),
  fc.string({ minLength: 1, maxLength: 20 }).filter((e) => !['out', 'stats', 'leave', 'hello', 'disconnect', 'connect', 'connect_error', 'disconnecting', 'newListener', 'removeListener'].includes(e)).map((e) => ({ event: e, args: [{ x: 1 }], registered: true })),
  fc.constantFrom('out', 'stats', 'task', 'step').map((e) => ({ event: e, args: [{}], registered: false })),
  junk.filter((x) => !capabilitiesSchema.safeParse(x).success).map((x) => ({ event: 'hello', args: [x], registered: false })),
);

/** An attacker connection; reconnects (and re-registers) after being disconnected. */
class Attacker {
  socket: Socket | null = null;
  registered = false;
  async connect(register: boolean): Promise<void> {
    this.socket?.close();
    const s = ioClient(url, { transports: ['websocket'], forceNew: true, reconnection: false });
    await new Promise<void>((r, j) => {
      s.once('connect', () => r());
      s.once('connect_error', j);
    });
    this.socket = s;
    this.registered = false;
    if (register) {
      await new Promise<void>((r) => s.emit('hello', { backend: 'cpu', adapter: null, throughputGflops: 0, agent: 'attacker' }, () => r()));
      this.registered = true;
    }
  }
  /** Sends one message and waits for the coordinator's verdict: a rejection or a disconnect. */
  async fire(m: Bad): Promise<string> {
    if (!this.socket?.connected || this.registered !== m.registered) await this.connect(m.registered);
    const s = this.socket!;
    return new Promise<string>((resolve) => {
      const done = (why: string) => {
        s.off('rejected', onRej);
        s.off('disconnect', onDisc);
        clearTimeout(t);
        resolve(why);
      };
      const onRej = (r: { reason: string }) => done(r.reason);
      const onDisc = () => done('disconnected');
      const t = setTimeout(() => done('no answer'), 15_000); // generous: training holds the loop; a hang is what fails
      s.on('rejected', onRej);
      s.on('disconnect', onDisc);
      s.emit(m.event, ...m.args);
    });
  }
}

describe('hostile input against a training swarm', () => {
  it('rejects and counts >= 1,000 generated malformed messages; training goes on with no NaN', async () => {
    await until(() => coord.scheduler.iteration >= 1, 'training started');
    const before = await rejectedTotal();
    const messages = fc.sample(corpus, { numRuns: Number(process.env.FUZZ_N ?? 1000), seed: 20261129 });
    // Eight attackers fire side by side (each waits for its own verdicts): the in-process tabs'
    // training holds the event loop between answers, so one at a time would take minutes.
    const attackers = Array.from({ length: 8 }, () => new Attacker());
    const verdicts: Record<string, number> = {};
    // Messages larger than the socket's limit (the run's largest legitimate message plus slack)
    // are cut by socket.io before any handler: the connection closes, nothing is parsed or counted.
    const cut: number[] = [];
    const limit = maxMessageBytes(coord.scheduler.opts.config, coord.opts.settings.batch, coord.opts.transferChunkBytes);
    await Promise.all(
      attackers.map(async (a, lane) => {
        for (let i = lane; i < messages.length; i += attackers.length) {
          const v = await a.fire(messages[i]!);
          verdicts[v] = (verdicts[v] ?? 0) + 1;
          if (v === 'disconnected') cut.push(approxBytes(messages[i]!.args));
        }
      }),
    );
    for (const a of attackers) a.socket?.close();
    const after = await rejectedTotal();
    console.log(
      `hostile socket messages: ${messages.length} tried; verdicts ${JSON.stringify(verdicts)}; ` +
        `rejected by reason ${JSON.stringify(Object.fromEntries(Object.entries(after).map(([k, n]) => [k, n - (before[k] ?? 0)]).filter(([, n]) => n)))}; ` +
        `cut by the ${limit}-byte socket limit ${cut.length}; crashes 0`,
    );
    expect(verdicts['no answer'] ?? 0).toBe(0);
    const counted = Object.keys(after).reduce((n, k) => n + (k === 'stale' ? 0 : after[k]! - (before[k] ?? 0)), 0);
    for (const bytes of cut) expect(bytes).toBeGreaterThan(limit);
    expect(counted + cut.length).toBe(messages.length);
    // Raw protocol garbage below socket.io: the coordinator closes those connections and lives on.
    const wsUrl = url.replace('http', 'ws') + '/socket.io/?EIO=4&transport=websocket';
    for (const payload of ['42["out"', '4Z', Buffer.from([0xff, 0x00, 0x13]), '0{"a":', 'x'.repeat(10_000)]) {
      const ws = new WebSocket(wsUrl);
      await new Promise<void>((r) => ws.once('open', () => r()));
      ws.send(payload);
      await new Promise((r) => setTimeout(r, 50));
      ws.close();
    }
    // Attackers joined as volunteers too, got stages when honest tabs were used up, and were
    // dropped: an honest volunteer joining lets the run resume.
    vols.push(await startNodeVolunteer(url, { name: 'honest-late' }));
    vols.push(await startNodeVolunteer(url, { name: 'honest-spare' }));
    const it0 = coord.scheduler.iteration;
    if (process.env.FUZZ_DEBUG) {
      await new Promise((r) => setTimeout(r, 5000));
      console.log('DEBUG', coord.scheduler.state, coord.scheduler.iteration, JSON.stringify(coord.events.list().filter((e) => e.kind !== 'rejected').slice(-15).map((e) => e.message)), coord.registry.all().map((x) => [x.id, x.stage, x.caps.agent]));
    }
    await until(() => coord.scheduler.iteration >= it0 + 2, 'training continues after the attack');
    const health = await (await fetch(`${url}/healthz`)).json();
    expect(health.ok).toBe(true);
    for (const v of vols) {
      const st = v.agent.currentStage;
      if (!st) continue;
      for (const [name, w] of Object.entries(st.getWeights())) expect(w.every(Number.isFinite), name).toBe(true);
    }
  });

  it('odd HTTP over raw TCP (targets, hosts, methods, headers, garbage, fuzz) gets a 4xx; training goes on', async () => {
    const port = Number(new URL(url).port);
    const host = `localhost:${port}`;
    const req = (line: string, headers = `Host: ${host}\r\nConnection: close\r\n`) => `${line}\r\n${headers}\r\n`;
    const cases: { name: string; request: string | Buffer; expect: number | ((s: number) => boolean) }[] = [
      { name: 'GET //', request: req('GET // HTTP/1.1'), expect: 400 },
      { name: 'GET //host/path', request: req('GET //evil.example/healthz HTTP/1.1'), expect: 400 },
      { name: 'absolute URL, port out of range', request: req('GET http://localhost:99999/healthz HTTP/1.1'), expect: 400 },
      { name: 'absolute URL, port not a number', request: req('GET http://localhost:abc/healthz HTTP/1.1'), expect: (s) => s === 400 },
      { name: 'absolute URL, foreign host', request: req('GET http://evil.example/metrics HTTP/1.1'), expect: 421 },
      { name: 'absolute URL, ftp scheme', request: req('GET ftp://localhost/ HTTP/1.1'), expect: 400 },
      { name: 'absolute URL, own host', request: req(`GET http://${host}/healthz HTTP/1.1`), expect: 200 },
      { name: 'bad percent-encoding', request: req('GET /%zz HTTP/1.1'), expect: 400 },
      { name: 'truncated UTF-8 escape', request: req('GET /%E0%A4%A HTTP/1.1'), expect: 400 },
      { name: 'bad escape in the operator API', request: req('GET /api/operator/%ff HTTP/1.1'), expect: 400 },
      { name: 'asterisk target', request: req('OPTIONS * HTTP/1.1'), expect: 400 },
      { name: 'relative target', request: req('GET healthz HTTP/1.1'), expect: 400 },
      { name: 'target of 10,000 chars', request: req(`GET /${'a'.repeat(10_000)} HTTP/1.1`), expect: 414 },
      { name: 'headers over maxHeaderSize', request: req('GET /healthz HTTP/1.1', `Host: ${host}\r\nX-Big: ${'b'.repeat(20_000)}\r\n`), expect: 431 },
      { name: '2,000 small headers', request: req('GET /healthz HTTP/1.1', `Host: ${host}\r\n${Array.from({ length: 2000 }, (_, i) => `X-${i}: ${'v'.repeat(10)}\r\n`).join('')}`), expect: 431 },
      { name: 'DNS rebinding: foreign Host on /metrics', request: req('GET /metrics HTTP/1.1', `Host: evil.example:${port}\r\n`), expect: 421 },
      { name: 'DNS rebinding: foreign Host on the socket.io handshake', request: req('GET /socket.io/?EIO=4&transport=polling HTTP/1.1', `Host: evil.example:${port}\r\n`), expect: (s) => s >= 400 && s < 500 },
      { name: 'own name on another port', request: req('GET /healthz HTTP/1.1', `Host: localhost:${port + 1}\r\n`), expect: 421 },
      { name: 'malformed Host', request: req('GET /healthz HTTP/1.1', `Host: [::1\r\n`), expect: 421 },
      { name: 'Host with userinfo', request: req('GET /healthz HTTP/1.1', `Host: evil@localhost:${port}\r\n`), expect: 421 },
      { name: 'no Host (HTTP/1.0)', request: req('GET /healthz HTTP/1.0', ''), expect: 421 },
      { name: 'no Host (HTTP/1.1)', request: req('GET /healthz HTTP/1.1', ''), expect: 400 },
      { name: 'two Host headers', request: req('GET /healthz HTTP/1.1', `Host: ${host}\r\nHost: evil.example\r\nConnection: close\r\n`), expect: 400 },
      { name: 'unknown method', request: req('BREW /healthz HTTP/1.1'), expect: 400 },
      { name: 'POST with a body', request: `POST /healthz HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello`, expect: 405 },
      ...['PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE'].map((m) => ({ name: m, request: req(`${m} / HTTP/1.1`), expect: 405 })),
      { name: 'CONNECT', request: req(`CONNECT ${host} HTTP/1.1`), expect: 405 },
      { name: 'unsupported HTTP version', request: req('GET /healthz HTTP/9.9'), expect: (s) => s >= 400 && s < 600 && s !== 500 },
      { name: 'NUL in a header', request: req('GET /healthz HTTP/1.1', `Host: ${host}\r\nX: a\u0000b\r\n`), expect: 400 },
      { name: 'Content-Length and Transfer-Encoding', request: `POST / HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, expect: 400 },
      { name: 'binary garbage', request: Buffer.from([0x00, 0x01, 0xff, 0xfe, 0x0d, 0x0a, 0x0d, 0x0a]), expect: 400 },
      { name: 'operator API without token', request: req('GET /api/operator/state HTTP/1.1'), expect: 401 },
      { name: 'token in the query string (refused)', request: req(`GET /api/operator/state?token=${encodeURIComponent(coord.operatorToken)} HTTP/1.1`), expect: 401 },
      { name: 'path traversal', request: req('GET /..%2f..%2f..%2fetc%2fpasswd HTTP/1.1'), expect: (s) => s === 404 || s === 503 || s === 400 },
    ];
    const byStatus: Record<string, number> = {};
    const failures: string[] = [];
    const check = async (name: string, request: string | Buffer, ok: (s: number) => boolean) => {
      const a = await rawRequest(port, request, 20_000); // generous: training holds the loop; a hang is what fails
      const verdict = a.timedOut ? 'no answer' : String(a.status ?? 'closed');
      byStatus[verdict] = (byStatus[verdict] ?? 0) + 1;
      if (a.status === null || !ok(a.status) || a.text.includes('root:')) failures.push(`${name}: ${verdict} ${a.text.slice(0, 120)}`);
    };
    const http0 = await rejectedHttp();
    // In parallel batches: the in-process volunteers' training holds the event loop between answers.
    const inBatches = async <T,>(items: T[], f: (x: T) => Promise<void>) => {
      for (let i = 0; i < items.length; i += 25) await Promise.all(items.slice(i, i + 25).map(f));
    };
    await inBatches(cases, (c) => check(c.name, c.request, typeof c.expect === 'number' ? ((n) => (s: number) => s === n)(c.expect) : c.expect));
    // The class, not the examples: generated request lines (methods, targets with any characters
    // and escapes, versions) each get an answer that is not a 500 and not a hang.
    const target = fc.oneof(
      fc.string({ maxLength: 40 }).map((x) => `/${x}`),
      fc.string({ unit: fc.constantFrom('%', '/', '.', ':', '@', '?', '#', 'a', 'Z', '0', 'f', 'é', ' ', '\\', '[', ']'), maxLength: 30 }),
      fc.webUrl({ withQueryParameters: true }),
      fc.tuple(fc.constantFrom('http://', 'https://', '//', ''), fc.domain(), fc.integer({ min: -10, max: 100_000 })).map(([a, d, p]) => `${a}${d}:${p}/healthz`),
    );
    const line = fc.tuple(fc.constantFrom('GET', 'HEAD', 'POST', 'get', 'G ET', 'M-SEARCH', 'PROPFIND', ''), target, fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2', 'HTTP/1.1 x', ''));
    const fuzz = fc.sample(line, { numRuns: Number(process.env.HTTP_FUZZ_N ?? 300), seed: 20261201 });
    await inBatches(fuzz, ([m, t, v]) => check(`fuzz ${m} ${t} ${v}`, Buffer.from(`${m} ${t} ${v}\r\nHost: ${host}\r\nConnection: close\r\n\r\n`, 'utf8'), (s) => s !== 500));
    const http1 = await rejectedHttp();
    const health = await (await fetch(`${url}/healthz`)).json();
    console.log(
      `hostile HTTP requests: ${cases.length + fuzz.length} tried (${cases.length} cases, ${fuzz.length} generated); answers by status ${JSON.stringify(byStatus)}; ` +
        `refused by reason ${JSON.stringify(Object.fromEntries(Object.entries(http1).map(([k, n]) => [k, n - (http0[k] ?? 0)]).filter(([, n]) => n)))}; crashes 0 (healthz ok: ${health.ok})`,
    );
    expect(failures).toEqual([]);
    expect(byStatus['no answer'] ?? 0).toBe(0);
    expect(health.ok).toBe(true);
    const it0 = coord.scheduler.iteration;
    await until(() => coord.scheduler.iteration >= it0 + 1, 'training continues after the HTTP attack');
  });

  it('an active tab that sends results out of turn or for another stage is rejected, then dropped, and its stage rebuilt', async () => {
    if (coord.placement.spares().length === 0) vols.push(await startNodeVolunteer(url, { name: 'spare-2' }));
    const victim = coord.stages.owner(1)!;
    const v = vols.find((x) => x.status().volunteerId === victim.id)!;
    const rejected: string[] = [];
    v.socket.on('rejected', (r) => void rejected.push(r.reason));
    const recoveries = coord.recovery.done.length;
    v.socket.emit('out', { attempt: 2 ** 40, iteration: 0, mb: 7, dir: 'B', hop: 3, computeMs: 1 }, frame({ fromStage: 1 }));
    v.socket.emit('out', { attempt: 2 ** 40, iteration: 0, mb: 0, dir: 'F', hop: 0, computeMs: 1 }, frame({ fromStage: 2 }));
    v.socket.emit('out', { attempt: 2 ** 40, iteration: 0, mb: 1, dir: 'F', hop: 1, computeMs: 1 }, null);
    await until(() => coord.recovery.done.length > recoveries, 'stage 1 rebuilt');
    expect(rejected.filter((r) => r === 'out_of_turn').length).toBeGreaterThanOrEqual(2);
    expect(coord.registry.get(victim.id)).toBeUndefined();
  });
});
