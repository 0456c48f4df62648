/**
 * Tokenizers. The default is byte-level: every UTF-8 byte is a token (vocabulary 256), so any
 * text file works with no training step and nothing to download.
 */
export interface Tokenizer {
  readonly name: string;
  readonly vocabSize: number;
  encode(text: string): Int32Array;
  decode(ids: ArrayLike<number>): string;
}

export class ByteTokenizer implements Tokenizer {
  readonly name = 'byte';
  readonly vocabSize = 256;
  encode(text: string): Int32Array {
    return Int32Array.from(new TextEncoder().encode(text));
  }
  decode(ids: ArrayLike<number>): string {
    const bytes = Uint8Array.from(Array.from(ids, (v) => Math.max(0, Math.min(255, v | 0))));
    return new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  }
}

export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}

export const TOKENIZERS = ['byte'] as const;

/** Returns the tokenizer with this name, or throws a TokenizerError listing the known ones. */
export function getTokenizer(name: string): Tokenizer {
  if (name === 'byte') return new ByteTokenizer();
  throw new TokenizerError(`unknown tokenizer "${name}"; available: ${TOKENIZERS.join(', ')}`);
}
