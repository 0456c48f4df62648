/**
 * Node-only: what the coordinator does with `--data`, `--data-field` and `--tokenizer` before it
 * starts: prepare the dataset (cache under `<data-dir>/corpus-cache`), put the tokenizer's
 * vocabulary and the corpus and tokenizer hashes into the run settings (stored with the run, so a
 * resume can be checked), and describe each stage's memory.
 */
import { join } from 'node:path';
import { prepareDataset, type PreparedDataset } from '../corpus-file.js';
import { modelConfigOf, type RunSettings } from '../../shared/run-settings.js';
import { formatModelMemory, modelMemory } from '../../shared/model/memory.js';

export interface RunData {
  prepared: PreparedDataset;
  /** The settings with vocabSize, corpusHash, tokenizerHash and tokenizer filled in. */
  settings: RunSettings;
  /** Each stage's weights, Adam, gradients and activation stash (1F1B depth), for the console. */
  memoryTable: string;
}

export async function prepareRunData(
  settings: RunSettings,
  o: { data?: string; field?: string; tokenizer?: string; dataDir: string; log?: (line: string) => void },
): Promise<RunData> {
  const tokenizer = o.tokenizer ?? 'byte';
  const prepared = await prepareDataset({
    path: o.data,
    field: o.field,
    tokenizer,
    seqLen: modelConfigOf(settings).seqLen,
    cacheDir: join(o.dataDir, 'corpus-cache'),
    log: o.log,
  });
  const withData: RunSettings = {
    ...settings,
    vocabSize: prepared.tokenizer.vocabSize,
    corpusHash: prepared.corpusHash,
    tokenizerHash: prepared.tokenizerHash,
    tokenizer,
  };
  const memoryTable = formatModelMemory(modelMemory(modelConfigOf(withData), { batch: settings.batch, microbatches: settings.microbatches }));
  return { prepared, settings: withData, memoryTable };
}
