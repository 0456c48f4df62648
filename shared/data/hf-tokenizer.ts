/**
 * A Hugging Face `tokenizer.json`, loaded as is by @huggingface/tokenizers (pure JavaScript, no
 * dependencies, the tokenizer code of Transformers.js): the same file encodes and decodes in
 * Node and in the browser. `bpe:N` tokenizers trained here are written in this format too.
 */
import { Tokenizer as HfRuntime } from '@huggingface/tokenizers';
import { TokenizerError, type Tokenizer, type TokenizerSpec } from './tokenizer-interface.js';
import { preTokenize } from './byte-level.js';


/** Largest tokenizer.json accepted (a 256k-token vocabulary with merges is ~30 MB). */
export const MAX_TOKENIZER_JSON_BYTES = 64 * 1024 * 1024;

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly spec: TokenizerSpec;

  private constructor(
    readonly name: string,
    private readonly runtime: HfRuntime,
    json: string,
    vocabSize: number,
    /** A plain byte-level BPE (what `bpe:N` writes): chunks encode independently, so cache them. */
    private readonly chunked: boolean,
  ) {
    this.vocabSize = vocabSize;
    this.spec = { kind: 'hf', name, json };
  }

  /** Parses and checks a tokenizer.json text; `name` says where it came from (for errors). */
  static fromJson(json: string, name: string): HfTokenizer {
    if (json.length > MAX_TOKENIZER_JSON_BYTES) throw new TokenizerError(`tokenizer ${name}: larger than ${MAX_TOKENIZER_JSON_BYTES} bytes`);
    let parsed: { model?: { type?: unknown; vocab?: unknown }; added_tokens?: unknown };
    try {
      parsed = JSON.parse(json);
    } catch (e) {
      throw new TokenizerError(`tokenizer ${name}: not valid JSON (${(e as Error).message})`);
    }
    const vocab = parsed?.model?.vocab;
    if (typeof parsed !== 'object' || parsed === null || typeof vocab !== 'object' || vocab === null) {
      throw new TokenizerError(`tokenizer ${name}: not a Hugging Face tokenizer.json (no model.vocab)`);
    }
    // Vocabularies are objects (BPE, WordPiece) or [token, score] lists (Unigram).
    const ids: number[] = Array.isArray(vocab) ? vocab.map((_, i) => i) : Object.values(vocab as Record<string, unknown>).map(Number);
    const added = Array.isArray(parsed.added_tokens) ? parsed.added_tokens.map((t) => Number((t as { id?: unknown })?.id)) : [];
    let max = -1;
    for (const id of [...ids, ...added]) {
      if (!Number.isInteger(id) || id < 0) throw new TokenizerError(`tokenizer ${name}: token id ${id} is not a non-negative integer`);
      if (id > max) max = id;
    }
    if (max < 0) throw new TokenizerError(`tokenizer ${name}: empty vocabulary`);
    let runtime: HfRuntime;
    try {
      runtime = new HfRuntime(parsed, {});
    } catch (e) {
      throw new TokenizerError(`tokenizer ${name}: @huggingface/tokenizers cannot load it (${(e as Error).message})`);
    }
    const p = parsed as { normalizer?: unknown; pre_tokenizer?: { type?: unknown; use_regex?: unknown; add_prefix_space?: unknown } | null; model: { type?: unknown } };
    const chunked =
      p.normalizer == null &&
      p.pre_tokenizer?.type === 'ByteLevel' &&
      p.pre_tokenizer.use_regex !== false &&
      p.pre_tokenizer.add_prefix_space !== true &&
      p.model.type === 'BPE' &&
      added.length === 0;
    return new HfTokenizer(name, runtime, json, max + 1, chunked);
  }

  private cache = new Map<string, number[]>();

  encode(text: string): Int32Array {
    if (!this.chunked) return Int32Array.from(this.runtime.encode(text, { add_special_tokens: false }).ids);
    // Same result as encoding the whole text (the ByteLevel pre-tokenizer splits with this very
    // pattern and BPE never merges across chunks; tokenizer.test.ts checks), ~10x faster on prose.
    const out: number[] = [];
    for (const chunk of preTokenize(text)) {
      let ids = this.cache.get(chunk);
      if (!ids) {
        ids = this.runtime.encode(chunk, { add_special_tokens: false }).ids;
        if (this.cache.size >= 200_000) this.cache.clear();
        this.cache.set(chunk, ids);
      }
      for (const id of ids) out.push(id);
    }
    return Int32Array.from(out);
  }

  decode(ids: ArrayLike<number>): string {
    if (ids.length === 0) return '';
    const valid = Array.from(ids, (v) => Math.max(0, Math.min(this.vocabSize - 1, v | 0)));
    return this.runtime.decode(valid, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }
}
