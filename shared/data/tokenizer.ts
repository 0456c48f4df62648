/**
 * Tokenizers, behind one interface so the coordinator, the local trainer and the browser all
 * encode and decode the same way:
 *   - `byte`: every UTF-8 byte is a token (vocabulary 256), no training, nothing to load;
 *   - a Hugging Face `tokenizer.json` (`HfTokenizer`), which is also what `bpe:N` trains and writes.
 * A tokenizer travels as its `spec` (JSON-safe): the coordinator hands it to tabs and the export,
 * and `tokenizerFromSpec` rebuilds it anywhere.
 */
import { HfTokenizer } from './hf-tokenizer.js';
import { TokenizerError, type Tokenizer, type TokenizerSpec } from './tokenizer-interface.js';

export { TokenizerError, type Tokenizer, type TokenizerSpec };

export class ByteTokenizer implements Tokenizer {
  readonly name = 'byte';
  readonly vocabSize = 256;
  readonly spec: TokenizerSpec = { kind: 'byte' };
  encode(text: string): Int32Array {
    return Int32Array.from(new TextEncoder().encode(text));
  }
  decode(ids: ArrayLike<number>): string {
    const bytes = Uint8Array.from(Array.from(ids, (v) => Math.max(0, Math.min(255, v | 0))));
    return new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  }
}

/** The forms `--tokenizer` takes. */
export const TOKENIZER_FORMS = 'byte | bpe:<vocab size> | <path to a tokenizer.json>';

/** A tokenizer that needs no corpus or file (only `byte`); throws a TokenizerError otherwise. */
export function getTokenizer(name: string): Tokenizer {
  if (name === 'byte') return new ByteTokenizer();
  throw new TokenizerError(`tokenizer "${name}" needs a corpus or a file (prepareDataset builds it); --tokenizer takes ${TOKENIZER_FORMS}`);
}

/** Rebuilds a tokenizer from its spec (validated: a stranger may have sent it). */
export function tokenizerFromSpec(spec: unknown): Tokenizer {
  const s = spec as Partial<{ kind: string; name: string; json: string }> | null;
  if (s?.kind === 'byte') return new ByteTokenizer();
  if (s?.kind === 'hf' && typeof s.json === 'string' && typeof s.name === 'string') return HfTokenizer.fromJson(s.json, s.name);
  throw new TokenizerError('tokenizer spec must be {kind: "byte"} or {kind: "hf", name, json}');
}

/** What a model file's metadata records of its tokenizer: `tokenizer` (a name) and, unless byte, `tokenizer_json`. */
export function tokenizerMetadata(t: Tokenizer): Record<string, string> {
  return t.spec.kind === 'byte' ? { tokenizer: 'byte' } : { tokenizer: t.spec.name, tokenizer_json: t.spec.json };
}

/** The tokenizer a model file's metadata records (files from before issue 26 say `byte`). */
export function tokenizerFromMetadata(meta: Record<string, string>): Tokenizer {
  if (meta.tokenizer_json !== undefined) return HfTokenizer.fromJson(meta.tokenizer_json, meta.tokenizer ?? 'tokenizer_json');
  if (meta.tokenizer === undefined || meta.tokenizer === 'byte') return new ByteTokenizer();
  throw new TokenizerError(`model file names tokenizer "${meta.tokenizer}" but carries no tokenizer_json`);
}
