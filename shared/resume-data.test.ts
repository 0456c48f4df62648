import { describe, it, expect } from 'vitest';
import { DEFAULT_SETTINGS, resumeDataMismatch, modelConfigOf, type RunSettings } from './run-settings.js';

describe('a resumed run must train on the same data', () => {
  const run: RunSettings = { ...DEFAULT_SETTINGS, vocabSize: 4096, corpusHash: 'c'.repeat(64), tokenizerHash: 't'.repeat(64), tokenizer: 'bpe:4096' };

  it('accepts the same corpus and tokenizer, refuses another with a message naming what differs', () => {
    expect(resumeDataMismatch(run, { ...run })).toBeNull();
    expect(resumeDataMismatch(run, { ...run, corpusHash: 'd'.repeat(64) })).toMatch(/another corpus \(SHA-256 cccccccccccc, this --data is dddddddddddd\)/);
    expect(resumeDataMismatch(run, { ...run, tokenizerHash: 'u'.repeat(64), tokenizer: 'tok.json' })).toMatch(/tokenizer bpe:4096 .* not tok.json/);
  });

  it('a run stored before the hashes existed trained on bytes: only the vocabulary can be checked', () => {
    const old: RunSettings = { ...DEFAULT_SETTINGS };
    expect(resumeDataMismatch(old, { ...DEFAULT_SETTINGS, vocabSize: 256, corpusHash: 'x', tokenizerHash: 'y' })).toBeNull();
    expect(resumeDataMismatch(old, run)).toMatch(/vocabulary is 256 tokens, this tokenizer's 4096/);
  });

  it('the model takes its vocabulary from the settings', () => {
    expect(modelConfigOf(DEFAULT_SETTINGS).vocabSize).toBe(256);
    expect(modelConfigOf(run).vocabSize).toBe(4096);
    expect(modelConfigOf({ ...run, preset: 'paper-124m', stages: 4 })).toMatchObject({ dModel: 512, nHeads: 8, nLayers: 12, layersPerStage: 3, seqLen: 512, vocabSize: 4096 });
    expect(modelConfigOf({ ...run, preset: 'paper-500m', stages: 12 })).toMatchObject({ dModel: 1024, nHeads: 16, nLayers: 24, layersPerStage: 2, seqLen: 1024 });
  });
});
