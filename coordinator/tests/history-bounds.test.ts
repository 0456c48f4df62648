/**
 * Bounded history through the real protocol: a stranger's huge event name reaches the event log,
 * SQLite and the dashboard clipped to 1 KiB, and a dashboard opened on a run with 200,000 stored
 * events and 50,000 iterations gets the newest rows in a payload bounded by row counts.
 */
import { describe, it, expect, afterAll, beforeAll } from 'vitest';
import { io as ioClient, type Socket } from 'socket.io-client';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { DEFAULT_SETTINGS } from '../../shared/run-settings.js';
import { DASHBOARD_EVENTS, DASHBOARD_ITERATIONS } from '../record/store.js';
import type { Ack, OperatorInit, RunDetail } from '../../shared/protocol/operator.js';
import { until } from '../../testing/until.js';

const TOKEN = 'history-bounds-token-0123456789';
let coord: Coordinator;
let url: string;
const sockets: Socket[] = [];

beforeAll(async () => {
  coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings: { ...DEFAULT_SETTINGS, preset: 'tiny' }, port: 0, silent: true, operatorToken: TOKEN });
  url = await coord.listen();
});
afterAll(async () => {
  for (const s of sockets) s.close();
  await coord.close();
});

function connect(path = '', auth?: Record<string, unknown>): Promise<Socket> {
  const s = ioClient(`${url}${path}`, { transports: ['websocket'], forceNew: true, reconnection: false, auth });
  sockets.push(s);
  return new Promise((r, j) => {
    s.once('connect', () => r(s));
    s.once('connect_error', j);
  });
}

describe('bounded history', () => {
  it('a 100 KB event name from a stranger is stored, logged and pushed clipped to 1 KiB', async () => {
    const s = await connect();
    await new Promise<void>((r) => s.emit('hello', { backend: 'cpu', adapter: null, throughputGflops: 0, agent: 'x' }, () => r()));
    const name = 'n'.repeat(100_000);
    const rejected = new Promise((r) => s.once('rejected', r));
    s.emit(name, 1);
    await rejected;
    await until(() => coord.events.list('rejected').length > 0, 'the rejection logged');
    const e = coord.events.list('rejected').at(-1)!;
    expect(e.message.length).toBeLessThanOrEqual(1024);
    expect(e.message).toMatch(/more chars\]/);
    const stored = coord.store.events(coord.runId).filter((x) => x.kind === 'rejected');
    expect(stored.at(-1)!.message).toBe(e.message);
  });

  it('a dashboard opened on 200,000 events and 50,000 iterations gets the newest rows, bounded', async () => {
    const run = coord.runId;
    const db = coord.store.db;
    const ev = db.prepare("INSERT INTO events (run, time, kind, message, data) VALUES (?, ?, 'join', ?, '{\"volunteer\":\"v\"}')");
    const it = db.prepare("INSERT INTO iterations (run, iteration, train_loss, val_loss, seconds, time, tokens, stages) VALUES (?, ?, 3, NULL, 0.5, ?, 256, '[]')");
    db.transaction(() => {
      for (let i = 1; i <= 200_000; i++) ev.run(run, i, `old event ${i}`);
      for (let i = 1; i <= 50_000; i++) it.run(run, i, i);
    })();
    const op = await connect('/operator', { token: TOKEN });
    const t0 = Date.now();
    const r = (await op.timeout(30_000).emitWithAck('init')) as Ack<{ init: OperatorInit }>;
    const ms = Date.now() - t0;
    if (!r.ok) throw new Error(r.error);
    const { init } = r;
    expect(init.events).toHaveLength(DASHBOARD_EVENTS);
    expect(init.events.at(-1)!.message).toBe('old event 200000');
    expect(init.iterations).toHaveLength(DASHBOARD_ITERATIONS);
    expect(init.iterations[0]!.iteration).toBe(50_000 - DASHBOARD_ITERATIONS + 1);
    expect(init.iterations.at(-1)!.iteration).toBe(50_000);
    const bytes = JSON.stringify(init).length;
    console.log(`dashboard init on 200,000 events + 50,000 iterations: ${init.events.length} events, ${init.iterations.length} iterations, ${(bytes / 1024).toFixed(0)} KiB, ${ms} ms`);
    expect(bytes).toBeLessThan(3 * 1024 * 1024);
    // The past-run view over HTTP is bounded the same way.
    const detail = (await (await fetch(`${url}/api/operator/runs/${run}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as RunDetail;
    expect(detail.events).toHaveLength(DASHBOARD_EVENTS);
    expect(detail.iterations.at(-1)!.iteration).toBe(50_000);
  });
});
