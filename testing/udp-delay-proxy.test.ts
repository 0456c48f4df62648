import { describe, it, expect, afterEach } from 'vitest';
import dgram from 'node:dgram';
import { startUdpDelayProxy, type UdpDelayProxy } from './udp-delay-proxy.js';

let proxy: UdpDelayProxy | null = null;
const sockets: dgram.Socket[] = [];
afterEach(async () => {
  await proxy?.close();
  proxy = null;
  for (const s of sockets.splice(0)) s.close();
});

async function bound(): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  sockets.push(s);
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  return s;
}

describe('startUdpDelayProxy', () => {
  it('delays each direction by delayMs, keeps order, and gives each client its own upstream address', async () => {
    const echo = await bound();
    const seen: { from: string; text: string; at: number }[] = [];
    echo.on('message', (m, r) => {
      seen.push({ from: `${r.address}:${r.port}`, text: m.toString(), at: Date.now() });
      echo.send(Buffer.from(`re:${m}`), r.port, r.address);
    });
    proxy = await startUdpDelayProxy({ listenHost: '127.0.0.1', target: { host: '127.0.0.1', port: echo.address().port }, delayMs: 60 });
    const a = await bound();
    const b = await bound();
    const back: { who: string; text: string; at: number }[] = [];
    a.on('message', (m) => back.push({ who: 'a', text: m.toString(), at: Date.now() }));
    b.on('message', (m) => back.push({ who: 'b', text: m.toString(), at: Date.now() }));
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) a.send(Buffer.from(`a${i}`), proxy.port, '127.0.0.1');
    b.send(Buffer.from('b0'), proxy.port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 600));
    expect(seen.filter((s) => s.text.startsWith('a')).map((s) => s.text)).toEqual(['a0', 'a1', 'a2', 'a3', 'a4']);
    for (const s of seen) expect(s.at - t0).toBeGreaterThanOrEqual(55);
    expect(new Set(seen.map((s) => s.from)).size).toBe(2);
    expect(back.filter((x) => x.who === 'a').map((x) => x.text)).toEqual(['re:a0', 're:a1', 're:a2', 're:a3', 're:a4']);
    expect(back.find((x) => x.who === 'b')!.text).toBe('re:b0');
    for (const x of back) expect(x.at - t0).toBeGreaterThanOrEqual(115);
    expect(proxy.forwarded).toEqual({ up: 6, down: 6 });
    // The front socket first, then one upstream socket per client.
    expect(proxy.ports()[0]).toBe(proxy.port);
    expect(new Set(proxy.ports()).size).toBe(3);
  });

  it('sets the sockets\' buffers to socketBytes', async () => {
    const echo = await bound();
    proxy = await startUdpDelayProxy({ listenHost: '127.0.0.1', target: { host: '127.0.0.1', port: echo.address().port }, delayMs: 0, socketBytes: 1024 * 1024 });
    const a = await bound();
    a.send(Buffer.from('x'), proxy.port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 100));
    // Linux reports twice the size asked for (its bookkeeping share): at least what was asked, unless net.core.rmem_max is lower.
    expect(proxy.bufferBytes()).toBeGreaterThanOrEqual(1024 * 1024);
  });
});
