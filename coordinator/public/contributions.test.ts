/** Contributions: counted from accepted work per browser id, public table by nickname only. */
import { describe, it, expect } from 'vitest';
import { io as ioClient } from 'socket.io-client';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { Contributions } from './contributions.js';
import { DEFAULT_SETTINGS, type RunSettings } from '../../shared/run-settings.js';
import { capabilitiesSchema } from '../../shared/protocol/events.js';
import { startNodeVolunteer, type NodeVolunteer } from '../../testing/node-volunteer.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';

const settings: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 2, microbatches: 3, batch: 2, seqLen: 16, recovery: 'checkfree' };
const swarm = testSwarm();

describe('Contributions', () => {
  it('ranks by tokens, keeps nicknames only, marks the asker, forgets the smallest beyond its bound', () => {
    const c = new Contributions(3);
    c.record('aaaaaaaaaaaaaaaa', 100, 10, 1);
    c.record('bbbbbbbbbbbbbbbb', 300, 5, 3);
    c.setNickname('bbbbbbbbbbbbbbbb', 'Ishmael');
    c.record('cccccccccccccccc', 200, 50, 2);
    c.record('cccccccccccccccc', NaN, 1, 1); // ignored
    const top = c.top(10, 'cccccccccccccccc');
    expect(top.map((r) => [r.rank, r.nickname, r.tokens, r.mine ?? false])).toEqual([
      [1, 'Ishmael', 300, false],
      [2, null, 200, true],
      [3, null, 100, false],
    ]);
    expect(JSON.stringify(top)).not.toContain('cccc');
    expect(c.rankOf('cccccccccccccccc')).toBe(2);
    c.record('dddddddddddddddd', 1000, 1, 1);
    expect(c.of('aaaaaaaaaaaaaaaa').tokens).toBe(0); // the smallest was forgotten
    expect(c.top(1)[0]!.tokens).toBe(1000);
  });

  it('validates the browser id and nickname in hello', () => {
    const base = { backend: 'wasm', adapter: null, throughputGflops: 1, agent: 'x' };
    expect(capabilitiesSchema.safeParse({ ...base, browserId: 'abcdefghijklmnop', nickname: 'Queequeg 2' }).success).toBe(true);
    expect(capabilitiesSchema.safeParse({ ...base, nickname: 'Ahab' }).success).toBe(true);
    for (const bad of ['', ' Ahab', 'Ahab ', '<script>', 'x'.repeat(25), 'a\u202eb', 'tab\tname']) expect(capabilitiesSchema.safeParse({ ...base, nickname: bad }).success, bad).toBe(false);
    for (const bad of ['short', 'a'.repeat(65), 'has space in it!!', '../../etc/passwd00']) expect(capabilitiesSchema.safeParse({ ...base, browserId: bad }).success, bad).toBe(false);
  });

  it('counts accepted work per browser and serves the public table and swarm numbers', async () => {
    const N = 2;
    swarm.coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings, port: 0, silent: true, evalEvery: 0, maxIterations: N, sampleEverySeconds: 0, maxReplicas: 1 });
    const url = await swarm.coord.listen();
    const ids = ['browser-one-0000001', 'browser-two-0000002'];
    swarm.vols.push(await startNodeVolunteer(url, { name: 'c0', capabilities: { browserId: ids[0], nickname: 'Starbuck' } }));
    swarm.vols.push(await startNodeVolunteer(url, { name: 'c1', capabilities: { browserId: ids[1] } }));
    swarm.vols.push(await startNodeVolunteer(url, { name: 'nobody' })); // a spare without an id
    await until(() => swarm.coord!.scheduler.iteration >= N, `${N} iterations`, 120_000);
    const get = async (path: string) => {
      const r = await fetch(`${url}${path}`);
      return { status: r.status, body: (await r.json()) as Record<string, unknown> };
    };
    const { body } = await get(`/api/public/contributors?n=10&me=${ids[0]}`);
    const top = body.top as { nickname: string | null; tokens: number; microbatches: number; gpuMs: number; mine?: boolean }[];
    expect(top).toHaveLength(2);
    // Each tab holds one stage; each microbatch passes each stage's blocks once.
    const microbatches = N * settings.microbatches;
    for (const row of top) {
      expect(row.microbatches).toBe(microbatches);
      expect(row.tokens).toBe(microbatches * settings.batch * settings.seqLen!);
      expect(row.gpuMs).toBeGreaterThan(0);
    }
    expect(top.find((r) => r.mine)?.nickname).toBe('Starbuck');
    expect(top.filter((r) => r.nickname === null)).toHaveLength(1);
    const text = JSON.stringify(body);
    for (const id of ids) expect(text.includes(id)).toBe(false);
    for (const v of swarm.coord.registry.all()) expect(text.includes(v.id)).toBe(false);
    expect(text).not.toMatch(/127\.0\.0\.1|::1/);
    expect(body.me).toMatchObject({ rank: expect.any(Number), microbatches });
    const swarmInfo = await get('/api/public/swarm');
    expect(swarmInfo.body).toMatchObject({ volunteers: 3, active: 2, spares: 1, contributors: 2, iteration: N });
    expect((await get('/api/public/contributors?n=1000')).status).toBe(400);
    expect((await get('/api/public/contributors?me=not%20an%20id')).status).toBe(400);
    expect((await get('/api/public/nothing')).status).toBe(404);
    // A hello with a bad nickname is refused.
    const bad = ioClient(url, { transports: ['websocket'], forceNew: true, reconnection: false });
    try {
      const rejected = new Promise<{ reason: string }>((r) => bad.once('rejected' as never, r as never));
      bad.emit('hello' as never, { backend: 'wasm', adapter: null, throughputGflops: 1, agent: 'x', browserId: 'abcdefghijklmnop', nickname: '<b>Ahab</b>' } as never, () => {});
      expect((await rejected).reason).toBe('schema');
    } finally {
      bad.close();
    }
  });
});
