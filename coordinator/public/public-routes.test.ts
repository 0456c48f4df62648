/** The volunteer page's public routes face anyone: hostile query strings get 400, never a crash or a leak. */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import type { ServerResponse } from 'node:http';
import { handlePublicRoute } from './public-routes.js';
import { Contributions } from './contributions.js';

function fakeResponse() {
  const r = { status: 0, body: '', headers: {} as Record<string, string> };
  const res = {
    writeHead(status: number, headers: Record<string, string>) {
      r.status = status;
      r.headers = headers;
      return res;
    },
    end(body: string) {
      r.body = body;
      return res;
    },
  };
  return { res: res as unknown as ServerResponse, r };
}

const contributions = new Contributions();
contributions.record('secret-browser-id-1', 32, 5, 1);
const deps = {
  status: () => ({ state: 'running' as const, iteration: 3, stages: 2, needed: 0, needsVolunteer: [], trainLoss: 5.1, valLoss: null }),
  volunteers: () => ({ active: 2, spares: 0 }),
  contributions,
  sample: () => null,
  sampleEverySeconds: 180,
};

describe('public routes', () => {
  it('answer any query string with 200 or 400 JSON and never reveal a browser id', () => {
    fc.assert(
      fc.property(fc.constantFrom('/api/public/contributors', '/api/public/swarm', '/api/public/sample', '/api/public/x'), fc.string(), fc.string(), (path, n, me) => {
        const url = new URL(`http://x${path}?n=${encodeURIComponent(n)}&me=${encodeURIComponent(me)}`);
        const { res, r } = fakeResponse();
        expect(handlePublicRoute(url, res, deps)).toBe(true);
        expect([200, 400, 404]).toContain(r.status);
        expect(r.headers['content-type']).toBe('application/json');
        JSON.parse(r.body);
        if (me !== 'secret-browser-id-1') expect(r.body).not.toContain('secret-browser-id-1');
      }),
      { numRuns: 500 },
    );
  });

  it('leave other paths alone', () => {
    const { res } = fakeResponse();
    expect(handlePublicRoute(new URL('http://x/api/operator/state'), res, deps)).toBe(false);
    expect(handlePublicRoute(new URL('http://x/'), res, deps)).toBe(false);
  });
});
