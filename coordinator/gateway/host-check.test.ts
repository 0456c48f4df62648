import { describe, it, expect } from 'vitest';
import { networkInterfaces } from 'node:os';
import { HostCheck, parseHostHeader } from './host-check.js';

const req = (host: string | undefined, url = '/') => ({ headers: host === undefined ? {} : { host }, url });

describe('HostCheck (DNS rebinding)', () => {
  it('parses Host headers strictly', () => {
    expect(parseHostHeader('LocalHost:8080')).toEqual({ name: 'localhost', port: 8080 });
    expect(parseHostHeader('[::1]:80')).toEqual({ name: '[::1]', port: 80 });
    expect(parseHostHeader('example.org.')).toEqual({ name: 'example.org', port: null });
    for (const bad of ['', 'a b', 'x:0', 'x:65536', 'x:-1', '[::1', 'evil@localhost', 'x:80:80', 'x/y']) expect(parseHostHeader(bad), bad).toBeNull();
  });

  it('bound to 127.0.0.1: loopback names on the bound port only', () => {
    const h = new HostCheck('127.0.0.1');
    h.bound(8080);
    for (const ok of ['localhost:8080', '127.0.0.1:8080', '[::1]:8080', 'LOCALHOST:8080']) expect(h.hostAllowed(req(ok)), ok).toBe(true);
    for (const bad of ['localhost', 'localhost:8081', 'evil.example:8080', 'localhost.evil.example:8080', '10.0.0.5:8080', undefined]) expect(h.hostAllowed(req(bad)), String(bad)).toBe(false);
    // An absolute-form target names the host that counts.
    expect(h.hostAllowed(req('localhost:8080', 'http://evil.example/metrics'))).toBe(false);
    expect(h.hostAllowed(req('localhost:8080', 'http://localhost:8080/metrics'))).toBe(true);
  });

  it('--public-host names: without a port any port (reverse proxy), with a port that port', () => {
    const h = new HostCheck('127.0.0.1', ['swarm.example.org', 'lab.example:9000']);
    h.bound(8080);
    expect(h.hostAllowed(req('swarm.example.org'))).toBe(true);
    expect(h.hostAllowed(req('swarm.example.org:443'))).toBe(true);
    expect(h.hostAllowed(req('lab.example:9000'))).toBe(true);
    expect(h.hostAllowed(req('lab.example:9001'))).toBe(false);
    expect(h.hostAllowed(req('other.example.org'))).toBe(false);
    expect(() => new HostCheck('127.0.0.1', ['bad name'])).toThrow(/--public-host/);
  });

  it('bound to 0.0.0.0: loopback and this machine\'s addresses, never other names', () => {
    const h = new HostCheck('0.0.0.0');
    h.bound(8080);
    const v4 = Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4')!;
    expect(h.hostAllowed(req(`${v4.address}:8080`))).toBe(true);
    expect(h.hostAllowed(req('localhost:8080'))).toBe(true);
    expect(h.hostAllowed(req('evil.example:8080'))).toBe(false);
    expect(h.hostAllowed(req('203.0.113.9:8080'))).toBe(false);
  });

  it('port 80: a Host without a port is the bound port', () => {
    const h = new HostCheck('localhost');
    h.bound(80);
    expect(h.hostAllowed(req('localhost'))).toBe(true);
    expect(h.hostAllowed(req('localhost:80'))).toBe(true);
  });
});
