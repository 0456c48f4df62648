/**
 * The paper's 124M layout at its real size, once: a coordinator and 4 Node volunteers (wasm) run
 * one iteration of `paper-124m` (d 512, 8 heads, 4 stages x 3 blocks, sequence 512) on a corpus
 * tokenised with a trained BPE, with the vocabulary, data and memory table prepared exactly as
 * `npm start` prepares them (trainer/corpus/run-data.ts). Slow (minutes on 2 busy cores): it is the
 * only test at this size.
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Coordinator, DEFAULT_COORDINATOR } from '../coordinator/server.js';
import { startNodeVolunteer } from '../testing/node-volunteer.js';
import { testSwarm } from '../testing/test-swarm.js';
import { until } from '../testing/until.js';
import { DEFAULT_SETTINGS, modelConfigOf } from '../shared/run-settings.js';
import { prepareRunData } from '../trainer/corpus/run-data.js';
import { DEFAULT_CORPUS } from '../trainer/corpus-file.js';
import { stageMemory } from '../shared/model/memory.js';

const harness = testSwarm();

describe('paper-124m at its real size', () => {
  it('runs one iteration over 4 Node volunteers with a BPE vocabulary', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'paper-'));
    const data = join(dir, 'corpus.txt');
    writeFileSync(data, readFileSync(DEFAULT_CORPUS, 'utf8').slice(0, 300_000));
    const run = await prepareRunData(
      { ...DEFAULT_SETTINGS, preset: 'paper-124m', stages: 4, microbatches: 1, batch: 1, recovery: 'checkfree' },
      { data, tokenizer: 'bpe:1024', dataDir: dir },
    );
    const config = modelConfigOf(run.settings);
    expect(config).toMatchObject({ dModel: 512, nHeads: 8, nLayers: 12, layersPerStage: 3, seqLen: 512, vocabSize: 1024 });
    expect(run.memoryTable).toMatch(/stage  3 +13\.1 M params/);
    expect(stageMemory(config, 1, { batch: 1 }).params).toBe(3 * (4 * 512 * 512 + 3 * 512 * 2048 + 2 * 512));
    const coord = (harness.coord = new Coordinator({
      ...DEFAULT_COORDINATOR,
      settings: run.settings,
      dataset: run.prepared.dataset,
      tokenizerImpl: run.prepared.tokenizer,
      port: 0,
      silent: true,
      evalEvery: 0,
      maxIterations: 1,
      maxReplicas: 1,
      dataDir: join(dir, 'store'),
      taskTimeoutMs: 1_500_000,
      stepTimeoutMs: 1_500_000,
      // The coordinator and 4 volunteers share one Node process: a stage's forward at this size
      // blocks the event loop for longer than the default heartbeat allows.
      heartbeatTimeoutMs: 1_500_000,
      graceMs: 1_500_000,
    }));
    const url = await coord.listen();
    for (let i = 0; i < 4; i++) harness.vols.push(await startNodeVolunteer(url, { name: `p${i}` }));
    await until(() => coord.scheduler.iteration >= 1, 'one paper-124m iteration', 1_500_000);
    const loss = coord.scheduler.history[0]!.trainLoss;
    // At initialisation the model is near uniform over the 1024 tokens.
    expect(Math.abs(loss - Math.log(1024))).toBeLessThan(0.5);
    run.prepared.close();
  }, 1_800_000);
});
