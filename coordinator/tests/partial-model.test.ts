/**
 * Run with part of the model (SkipPipe, docs/skippipe.md): the operator measures the validation
 * loss of a subset of the stages (GET /api/operator/eval?stages=..., the `partial_eval` event)
 * and samples through a subset; both equal the local trainer's partial model on the same weights.
 */
import { describe, it, expect } from 'vitest';
import { io as ioClient, type Socket as ClientSocket } from 'socket.io-client';
import { Coordinator, DEFAULT_COORDINATOR } from '../server.js';
import { startNodeVolunteer } from '../../testing/node-volunteer.js';
import { DEFAULT_SETTINGS, modelConfigOf, type RunSettings } from '../../shared/run-settings.js';
import { trainLocal } from '../../trainer/cli.js';
import { useNodeBackend } from '../../trainer/node-backend.js';
import { testSwarm } from '../../testing/test-swarm.js';
import { until } from '../../testing/until.js';
import { parseRecordedSchedule } from '../../shared/schedule/recorded-schedule.js';

import { Stage } from '../../shared/model/stage.js';
import { lastLogits, stagesFromModelFile } from '../operator/model-file.js';
import { loadDataset } from '../../trainer/corpus-file.js';
import { evaluate } from '../../trainer/pipeline.js';
import { wireOf } from '../../shared/run-settings.js';
import { generate } from '../operator/sampling.js';
import type { Ack, PartialEvalResult, SampleResult } from '../../shared/protocol/operator.js';

const harness = testSwarm();

describe('a partial model (a subset of the stages)', () => {
  it('validates and samples through the chosen stages, as the local trainer does on the same weights', async () => {
    const s: RunSettings = { ...DEFAULT_SETTINGS, preset: 'tiny', stages: 4, microbatches: 2, batch: 2, recovery: 'checkfree' };
    const N = 3;
    const coord = (harness.coord = new Coordinator({ ...DEFAULT_COORDINATOR, settings: s, port: 0, silent: true, evalEvery: 0, evalBatches: 2, maxReplicas: 1, maxIterations: N, skipRatio: 0.25, skipSchedule: 'random' }));
    const url = await coord.listen();
    for (let i = 0; i < 4; i++) harness.vols.push(await startNodeVolunteer(url, { name: `t${i}` }));
    await until(() => coord.scheduler.iteration >= N && coord.scheduler.state === 'paused', `${N} iterations`, 120_000);
    const auth = { authorization: `Bearer ${coord.operatorToken}` };

    const res = await fetch(`${url}/api/operator/eval?stages=0,2,3`, { headers: auth });
    expect(res.status).toBe(200);
    const partial = (await res.json()) as PartialEvalResult;
    expect(partial).toMatchObject({ stages: [0, 2, 3], iteration: N });
    expect(partial.fullLoss).not.toBeNull();
    expect(partial.perplexityRatio).toBeCloseTo(Math.exp(partial.loss - partial.fullLoss!), 10);
    // Bad subsets and strangers are refused with a reason.
    expect((await fetch(`${url}/api/operator/eval?stages=1,3`, { headers: auth })).status).toBe(400);
    expect((await fetch(`${url}/api/operator/eval?stages=0;drop`, { headers: auth })).status).toBe(400);
    expect((await fetch(`${url}/api/operator/eval?stages=0,9`, { headers: auth })).status).toBe(400);
    expect((await fetch(`${url}/api/operator/eval?stages=0,3`)).status).toBe(401);

    // Export-then-evaluate: the file of stages 0, 2, 3 alone, loaded into local stages, gives the
    // partial validation loss the tabs measured (and records it).
    const exported = await fetch(`${url}/api/operator/export?stages=0,2,3`, { headers: auth });
    expect(exported.status).toBe(200);
    const bytes = new Uint8Array(await exported.arrayBuffer());
    expect((await fetch(`${url}/api/operator/export?stages=1,3`, { headers: auth })).status).toBe(400);
    await useNodeBackend('wasm');
    const file = await stagesFromModelFile(bytes);
    expect(file.stages).toHaveLength(3);
    expect(file.config.nLayers).toBe((modelConfigOf(s).nLayers / 4) * 3);
    expect(file.metadata.stages).toBe('0,2,3');
    const { dataset } = loadDataset({ seqLen: file.config.seqLen });
    const fromFile = evaluate(file.stages, dataset.valBatches(2, s.batch), wireOf(s));
    expect(Math.abs(fromFile - partial.loss) / partial.loss).toBeLessThan(1e-5);
    expect(Number(file.metadata.val_loss)).toBeCloseTo(partial.loss, 6);
    for (const st of file.stages) st.dispose();

    const schedule = parseRecordedSchedule(await (await fetch(`${url}/api/operator/schedule`, { headers: auth })).text());
    await useNodeBackend('wasm');
    const local = await trainLocal({ ...s, steps: N, evalEvery: N, evalBatches: 2, swap: false, recorded: schedule, evalStages: [0, 2, 3] });
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
    expect(rel(partial.loss, local.partialValLosses[local.partialValLosses.length - 1]!.loss)).toBeLessThan(1e-4);
    expect(rel(partial.fullLoss!, local.finalValLoss)).toBeLessThan(1e-4);

    // Sampling through stages 0 and 3 only (the operator socket) equals the local partial model.
    const op: ClientSocket = ioClient(`${url}/operator`, { auth: { token: coord.operatorToken }, transports: ['websocket'], forceNew: true, reconnection: false });
    try {
      await new Promise<void>((r, j) => (op.on('connect', () => r()), op.on('connect_error', j)));
      const req = { prompt: 'Call me', length: 8, temperature: 0, stages: [0, 3] };
      const r = (await op.timeout(60_000).emitWithAck('sample', req)) as Ack<{ result: SampleResult }>;
      if (!r.ok) throw new Error(r.error);
      const config = modelConfigOf(s);
      const stages = local.finalWeights.map((w, i) => {
        const st = new Stage(config, i);
        st.setWeights(w);
        return st;
      });
      const expected = await generate((ctx) => lastLogits(stages, ctx, [0, 3]), new TextEncoder().encode(req.prompt) as unknown as Int32Array, { length: 8, temperature: 0, seed: 1, seqLen: config.seqLen });
      expect(r.result.tokens).toEqual(expected);
      const bad = (await op.timeout(10_000).emitWithAck('sample', { ...req, stages: [1, 3] })) as Ack;
      expect(bad).toMatchObject({ ok: false });
      const ev = (await op.timeout(60_000).emitWithAck('partial_eval', { stages: [0, 3] })) as Ack<{ result: PartialEvalResult }>;
      expect(ev.ok && ev.result.stages).toEqual([0, 3]);
      for (const st of stages) st.dispose();
    } finally {
      op.close();
    }
  });
});
