/**
 * The operator's HTTP endpoints, `/api/operator/*`, each behind the operator token
 * (`Authorization: Bearer`) or, for the model download, a single-use export ticket:
 *   export-link  a ticket URL for the download (the dashboard's export button)
 *   export       the model as safetensors (model-export.ts)
 *   state        the swarm snapshot
 *   runs, runs/<id>  past runs from SQLite
 *   eval?stages=0,2,3  SkipPipe: validation loss of that subset of stages next to the full model's (partial-eval.ts)
 *   schedule     SkipPipe: this run's skip paths as a recorded schedule (`train:local --schedule-file`)
 *   assignment[?run=<id>]  `--dp diloco`: the run's replica assignment, what `train:local --assignment` replays
 *               (coordinator/record/assignment-export.ts; header x-swarm-assignment-ends says where it stops)
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SwarmSnapshot } from '../../shared/protocol/operator.js';
import { clientAddress } from '../gateway/client-address.js';
import { EXPORT_TICKET_MS, requestToken, type OperatorAuth } from './operator-auth.js';
import { HttpError, type ModelExport } from './model-export.js';
import type { OperatorContext } from './operator-context.js';
import { parseStageList, type PartialEval } from './partial-eval.js';
import { exportAssignment } from '../record/assignment-export.js';

export class OperatorHttp {
  constructor(
    private ctx: OperatorContext,
    private auth: OperatorAuth,
    private exporter: ModelExport,
    private snapshot: () => SwarmSnapshot,
    private partial?: PartialEval,
  ) {}

  /** Handles /api/operator/*; returns false for other paths. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    if (!url.pathname.startsWith('/api/operator/')) return false;
    const { store, run } = this.ctx;
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
      void res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers }).end(JSON.stringify(body));
    const throttled = () => json(429, { error: 'too many wrong operator tokens from this address; try again later' }, { 'retry-after': String(this.auth.throttle.retryAfterSeconds) });
    const path = url.pathname.slice('/api/operator/'.length);
    const address = clientAddress(req, this.ctx.trustProxy);
    const ticket = path === 'export' ? url.searchParams.get('ticket') : null;
    if (ticket !== null) {
      // A signed export link: valid once, for EXPORT_TICKET_MS; a bad one counts as a wrong token.
      if (!this.auth.throttle.allowed(address)) return throttled(), true;
      if (!this.auth.useTicket(ticket)) {
        this.auth.badTicket(address);
        return json(401, { error: 'export link expired or already used; ask the dashboard for a new one' }), true;
      }
    } else {
      const r = this.auth.authenticate(requestToken(req), address);
      if (r === 'throttled') return throttled(), true;
      if (r !== 'ok') {
        json(401, { error: 'operator token required (Authorization: Bearer <token>)' }, { 'www-authenticate': 'Bearer realm="swarm operator"' });
        return true;
      }
    }
    try {
      if (path === 'export-link') {
        const validate = url.searchParams.get('validate') === '0' ? '&validate=0' : '';
        const stages = url.searchParams.get('stages');
        const subset = stages !== null ? `&stages=${parseStageList(stages).join(',')}` : '';
        return json(200, { url: `/api/operator/export?ticket=${this.auth.newTicket()}${validate}${subset}`, expiresInSeconds: EXPORT_TICKET_MS / 1000 }), true;
      }
      if (path === 'state') return json(200, this.snapshot()), true;
      if (path === 'eval' && this.partial) return json(200, await this.partial.evaluate(parseStageList(url.searchParams.get('stages')))), true;
      if (path === 'schedule') {
        const schedule = run.skipSchedule();
        return (schedule ? json(200, schedule) : json(404, { error: 'this run trains full paths (--skip-ratio 0): there is no skip schedule' })), true;
      }
      if (path === 'runs') return json(200, store.listRuns({ liveId: run.runId() })), true;
      const m = /^runs\/([A-Za-z0-9_-]{1,64})$/.exec(path);
      if (m) {
        const detail = store.detail(m[1]!, run.runId());
        return detail ? json(200, detail) : json(404, { error: `no run ${m[1]}` }), true;
      }
      if (path === 'assignment') {
        const id = url.searchParams.get('run') ?? run.runId();
        if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) return json(400, { error: 'bad run id' }), true;
        const e = exportAssignment(store.assignments(id));
        if (e.record.iterations.length === 0) return json(404, { error: `no replica assignment stored for run ${id} (only --dp diloco runs record one): ${e.stopped}` }), true;
        return json(200, e.record, { 'x-swarm-assignment-ends': e.stopped, 'content-disposition': `attachment; filename="assignment-${id}.json"` }), true;
      }
      if (path === 'export') {
        const validate = url.searchParams.get('validate') !== '0';
        const stages = url.searchParams.get('stages');
        const model = await this.exporter.export({ validate, ...(stages !== null ? { stages: parseStageList(stages) } : {}) });
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': String(model.bytes.byteLength),
          'content-disposition': `attachment; filename="${model.filename}"`,
          'cache-control': 'no-store',
          'x-swarm-iteration': String(model.iteration),
          ...(model.valLoss !== null ? { 'x-swarm-val-loss': String(model.valLoss) } : {}),
        });
        res.end(req.method === 'HEAD' ? undefined : model.bytes);
        return true;
      }
      json(404, { error: 'not found' });
    } catch (e) {
      json(e instanceof HttpError ? e.status : 500, { error: (e as Error).message });
    }
    return true;
  }
}
