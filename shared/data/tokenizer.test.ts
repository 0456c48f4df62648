import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { ByteTokenizer, tokenizerFromSpec, TokenizerError, tokenizerFromMetadata } from './tokenizer.js';
import { assembleModelFile, readModelFile } from '../../coordinator/operator/model-file.js';
import { configForStages } from '../model/config.js';
import { stageParamSpecs, sizeOf } from '../model/params.js';
import { ChunkCounts, trainBpe, bpeTokenizerJson, BpeTrainError } from './bpe-trainer.js';
import { HfTokenizer } from './hf-tokenizer.js';
import { preTokenize } from './byte-level.js';

const corpus = readFileSync(new URL('../../data/corpus/moby-dick.txt', import.meta.url), 'utf8').slice(0, 200_000);

function trained(vocab: number): HfTokenizer {
  const c = new ChunkCounts();
  c.add(corpus);
  return HfTokenizer.fromJson(JSON.stringify(bpeTokenizerJson(trainBpe(c, vocab))), `bpe:${vocab}`);
}

describe('tokenizers', () => {
  const bpe = trained(1024);
  // Every Unicode scalar value sequence is a UTF-8 byte sequence and back (lone surrogates are not UTF-8).
  const anyText = fc.string({ unit: 'binary', maxLength: 200 });

  it('byte and bpe round-trip every UTF-8 text (property)', () => {
    const byte = new ByteTokenizer();
    fc.assert(
      fc.property(anyText, (s) => {
        expect(byte.decode(byte.encode(s))).toBe(s);
        expect(bpe.decode(bpe.encode(s))).toBe(s);
      }),
      { numRuns: 300 },
    );
  });

  it('every id bpe emits is inside its vocabulary, and it compresses English', () => {
    const ids = bpe.encode(corpus.slice(0, 20_000));
    expect(Math.max(...ids)).toBeLessThan(bpe.vocabSize);
    expect(bpe.vocabSize).toBe(1024);
    expect(20_000 / ids.length).toBeGreaterThan(2.5); // bytes per token: byte-level is 1
  });

  it('chunked encoding equals the library encoding the whole text (property, and on the corpus)', () => {
    const whole = HfTokenizer.fromJson((bpe.spec as { json: string }).json, 'whole');
    // A normalizer (even a no-op sequence) turns the chunk cache off: the library encodes the whole text.
    const parsed = JSON.parse((bpe.spec as { json: string }).json);
    parsed.normalizer = { type: 'Sequence', normalizers: [] };
    const plain = HfTokenizer.fromJson(JSON.stringify(parsed), 'plain');
    const text = corpus.slice(50_000, 60_000);
    expect(Array.from(whole.encode(text))).toEqual(Array.from(plain.encode(text)));
    fc.assert(
      fc.property(anyText, (s) => {
        expect(Array.from(whole.encode(s))).toEqual(Array.from(plain.encode(s)));
      }),
      { numRuns: 200 },
    );
  });

  it('pre-token chunks concatenate back to the text (property)', () => {
    fc.assert(fc.property(anyText, (s) => preTokenize(s).join('') === s));
  });

  it('the trained BPE is identical across runs and whatever order the text arrived in', () => {
    const a = new ChunkCounts();
    a.add(corpus);
    const b = new ChunkCounts();
    for (const [chunk, n] of [...a.counts.entries()].reverse()) b.counts.set(chunk, n); // same counts, other insertion order
    const ma = JSON.stringify(bpeTokenizerJson(trainBpe(a, 600)));
    expect(JSON.stringify(bpeTokenizerJson(trainBpe(a, 600)))).toBe(ma);
    expect(JSON.stringify(bpeTokenizerJson(trainBpe(b, 600)))).toBe(ma);
  });

  it('merges the most frequent pair first (checked by hand)', () => {
    const c = new ChunkCounts();
    c.add('aaab aab ab');
    const m = trainBpe(c, 258);
    // chunks "aaab" " aab" " ab": pair (a,b) occurs 3x, (a,a) 3x (aaab has 2); tie -> smaller ids: (a,a)=97,97 < (a,b)=97,98
    expect(m.merges[0]).toEqual(['a', 'a']);
    expect(m.merges[1]).toEqual(['a', 'b']);
    expect(() => trainBpe(c, 100)).toThrow(BpeTrainError);
  });

  it('travels as a spec and rejects a malformed one clearly', () => {
    const again = tokenizerFromSpec(JSON.parse(JSON.stringify(bpe.spec)));
    expect(Array.from(again.encode('Call me Ishmael.'))).toEqual(Array.from(bpe.encode('Call me Ishmael.')));
    expect(tokenizerFromSpec({ kind: 'byte' }).vocabSize).toBe(256);
    expect(() => tokenizerFromSpec({ kind: 'hf', name: 'x', json: '{' })).toThrow(/not valid JSON/);
    expect(() => tokenizerFromSpec({ kind: 'hf', name: 'x', json: '{"model":{}}' })).toThrow(/no model.vocab/);
    expect(() => tokenizerFromSpec({ kind: 'hf', name: 'x', json: '{"model":{"type":"BPE","vocab":{"a":-1},"merges":[]}}' })).toThrow(/non-negative/);
    expect(() => tokenizerFromSpec({ kind: 'wat' })).toThrow(TokenizerError);
  });

  it('the exported model file carries the run\'s tokenizer.json, and reads it back', () => {
    const c = configForStages({ vocabSize: 1024, dModel: 8, nHeads: 2, nLayers: 2, seqLen: 4, seed: 1 }, 2);
    const weights = [0, 1].map((s) => Object.fromEntries(stageParamSpecs(c, s).map((p) => [p.name, new Float32Array(sizeOf(p.shape))])));
    const meta = readModelFile(assembleModelFile(c, weights, {}, bpe)).metadata;
    expect(meta.tokenizer).toBe('bpe:1024');
    const back = tokenizerFromMetadata(meta);
    expect(Array.from(back.encode('Call me Ishmael.'))).toEqual(Array.from(bpe.encode('Call me Ishmael.')));
    const byteMeta = readModelFile(assembleModelFile(c, weights)).metadata;
    expect(byteMeta.tokenizer).toBe('byte');
    expect(byteMeta.tokenizer_json).toBeUndefined();
    expect(tokenizerFromMetadata(byteMeta).vocabSize).toBe(256);
    expect(() => tokenizerFromMetadata({ tokenizer: 'gpt2' })).toThrow(/carries no tokenizer_json/);
  });
});
