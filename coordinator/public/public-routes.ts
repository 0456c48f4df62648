/**
 * Public read-only routes for the volunteer page (no token): the swarm in numbers, the top
 * contributors (nicknames only, never a tab's id or address) and the shared model sample.
 *
 *   GET /api/public/swarm                          {state, iteration, stages, volunteers, spares, contributors}
 *   GET /api/public/contributors?n=10&me=<id>      {top: ContributorRow[], me: {rank, tokens, gpuMs, microbatches} | null}
 *   GET /api/public/sample                         {sample: SharedSampleText | null, everySeconds}
 */
import type { ServerResponse } from 'node:http';
import { browserIdSchema } from '../../shared/protocol/events.js';
import type { RunStatus } from '../../shared/protocol/events.js';
import type { Contributions } from './contributions.js';
import type { SharedSampleText } from './shared-sample.js';

export interface PublicRoutesDeps {
  status: () => RunStatus;
  volunteers: () => { active: number; spares: number };
  contributions: Contributions;
  sample: () => SharedSampleText | null;
  sampleEverySeconds: number;
}

export const MAX_TOP = 100;

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}

/** Answers `url` if it is a public route; false otherwise. */
export function handlePublicRoute(url: URL, res: ServerResponse, deps: PublicRoutesDeps): boolean {
  if (!url.pathname.startsWith('/api/public/')) return false;
  switch (url.pathname) {
    case '/api/public/swarm': {
      const s = deps.status();
      const v = deps.volunteers();
      json(res, 200, { state: s.state, iteration: s.iteration, stages: s.stages, needed: s.needed, trainLoss: s.trainLoss, volunteers: v.active + v.spares, active: v.active, spares: v.spares, contributors: deps.contributions.size });
      return true;
    }
    case '/api/public/contributors': {
      const nRaw = url.searchParams.get('n') ?? '10';
      const n = /^\d{1,3}$/.test(nRaw) ? Number(nRaw) : NaN;
      if (!(n >= 1 && n <= MAX_TOP)) return json(res, 400, { error: `n must be an integer 1..${MAX_TOP}` }), true;
      const meRaw = url.searchParams.get('me');
      const me = meRaw === null ? undefined : browserIdSchema.safeParse(meRaw);
      if (me && !me.success) return json(res, 400, { error: 'me must be a browser id (16-64 characters A-Z a-z 0-9 _ -)' }), true;
      const id = me?.success ? me.data : undefined;
      const rank = id ? deps.contributions.rankOf(id) : null;
      json(res, 200, { top: deps.contributions.top(n, id), me: id && rank !== null ? { rank, ...deps.contributions.of(id) } : null });
      return true;
    }
    case '/api/public/sample':
      json(res, 200, { sample: deps.sample(), everySeconds: deps.sampleEverySeconds });
      return true;
    default:
      json(res, 404, { error: 'no such public route' });
      return true;
  }
}
