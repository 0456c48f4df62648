/** Access: origin checks, localhost binding, nothing about other tabs or the token leaks to volunteers. */
import { describe, it, expect, afterAll, beforeAll } from 'vitest';
import { io as ioClient } from 'socket.io-client';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { DEFAULT_SETTINGS } from '../../shared/run-settings.js';

let coord: Coordinator;
let url: string;

beforeAll(async () => {
  coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings: { ...DEFAULT_SETTINGS }, port: 0, silent: true });
  url = await coord.listen();
});
afterAll(() => coord.close());

function connect(headers: Record<string, string> = {}) {
  return ioClient(url, { transports: ['websocket'], forceNew: true, reconnection: false, extraHeaders: headers });
}

describe('access', () => {
  it('refuses a reconnect flood from one address beyond the connection rate, and counts it', async () => {
    // Its own coordinator with a low rate (2/s, burst 4), so a busy machine that spreads the flood
    // over seconds still sends it faster than the budget refills.
    const flooded = new Coordinator({ ...DEFAULT_COORDINATOR, settings: { ...DEFAULT_SETTINGS }, port: 0, silent: true, connectionRate: 2 });
    const floodedUrl = await flooded.listen();
    const dial = () => ioClient(floodedUrl, { transports: ['websocket'], forceNew: true, reconnection: false });
    try {
      const burst = 2 * 2;
      const outcomes = await Promise.all(
        Array.from({ length: burst + 20 }, () => {
          const s = dial();
          return new Promise<string>((resolve) => {
            s.once('rejected', (r: { reason: string }) => resolve(r.reason));
            s.once('connect', () => setTimeout(() => resolve('kept'), 300));
            s.once('connect_error', () => resolve('error'));
          }).finally(() => s.close());
        }),
      );
      const refused = outcomes.filter((o) => o === 'reconnect_rate').length;
      expect(refused).toBeGreaterThanOrEqual(10);
      expect(outcomes.filter((o) => o === 'kept').length).toBeLessThan(outcomes.length);
      expect(await flooded.metrics.text()).toMatch(/swarm_rejected_messages_total\{reason="reconnect_rate"\} [1-9]/);
      // The budget refills: after a second a new connection is welcome again.
      await new Promise((r) => setTimeout(r, 1200));
      const later = dial();
      const kept = await new Promise<string>((resolve) => {
        later.once('rejected', (r: { reason: string }) => resolve(r.reason));
        later.once('connect', () => setTimeout(() => resolve('kept'), 300));
        later.once('connect_error', () => resolve('error'));
      });
      later.close();
      expect(kept).toBe('kept');
    } finally {
      await flooded.close();
    }
  });

  it('binds to 127.0.0.1 by default', () => {
    expect(DEFAULT_COORDINATOR.host).toBe('127.0.0.1');
    expect((coord as unknown as { http: { address(): { address: string } } }).http.address().address).toBe('127.0.0.1');
  });

  it('refuses a socket from a foreign page origin and accepts its own', async () => {
    const evil = connect({ origin: 'http://evil.example' });
    const err = await new Promise<Error>((r) => evil.once('connect_error', r));
    expect(err).toBeInstanceOf(Error);
    evil.close();
    const own = connect({ origin: url });
    await new Promise<void>((r, j) => {
      own.once('connect', () => r());
      own.once('connect_error', j);
    });
    own.close();
  });

  it('refuses a socket (DNS rebinding) and HTTP routes whose Host is not a name the coordinator serves', async () => {
    const port = new URL(url).port;
    const rebound = connect({ host: `evil.example:${port}` });
    await expect(new Promise<void>((r, j) => (rebound.once('connect', () => r()), rebound.once('connect_error', j)))).rejects.toBeInstanceOf(Error);
    rebound.close();
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`]) {
      const own = connect({ host });
      await new Promise<void>((r, j) => (own.once('connect', () => r()), own.once('connect_error', j)));
      own.close();
    }
    const counted = /swarm_http_rejected_total\{reason="host"\} (\d+)/;
    const before = Number(counted.exec(await coord.metrics.text())?.[1] ?? 0);
    const { rawRequest } = await import('../../testing/raw-http.js');
    for (const path of ['/metrics', '/healthz', '/', '/api/operator/state']) {
      expect((await rawRequest(Number(port), `GET ${path} HTTP/1.1\r\nHost: evil.example:${port}\r\nConnection: close\r\n\r\n`)).status, path).toBe(421);
    }
    expect(Number(counted.exec(await coord.metrics.text())?.[1])).toBe(before + 4);
  });

  it('a volunteer learns only its own id and public run status; never the token or other tabs', async () => {
    const seen: unknown[][] = [[], []];
    const tabs: ReturnType<typeof connect>[] = [];
    for (let i = 0; i < 2; i++) {
      const t = connect();
      tabs.push(t);
      t.onAny((event, ...args) => seen[i]!.push([event, ...args]));
      await new Promise<void>((r) => t.once('connect', () => r()));
      await new Promise<void>((r) => t.emit('hello', { backend: 'cpu', adapter: null, throughputGflops: 0, agent: 'x' }, () => r()));
    }
    await new Promise((r) => setTimeout(r, 300));
    const ids = coord.registry.all().map((v) => v.id);
    expect(ids).toHaveLength(2);
    // Each tab saw its own id (welcome), never the other's, never the token.
    const texts = seen.map((s) => JSON.stringify(s));
    const own = (i: number) => ids.find((id) => texts[i]!.includes(id));
    expect(own(0)).toBeDefined();
    expect(own(1)).toBeDefined();
    expect(own(0)).not.toBe(own(1));
    for (const t of texts) {
      expect(ids.filter((id) => t.includes(id))).toHaveLength(1);
      expect(t).not.toContain(coord.operatorToken);
    }
    for (const t of tabs) t.close();
    const pub = (await (await fetch(`${url}/healthz`)).text()) + (await (await fetch(`${url}/metrics`)).text());
    for (const id of ids) expect(pub).not.toContain(id);
    expect(pub).not.toContain(coord.operatorToken);
    expect((await fetch(`${url}/api/operator/state`)).status).toBe(401);
    expect((await fetch(`${url}/api/state`)).status).not.toBe(200);
  });
});
