/** What every tokenizer is (tokenizer.ts builds them; hf-tokenizer.ts is one kind). */
export type TokenizerSpec = { kind: 'byte' } | { kind: 'hf'; name: string; json: string };

export interface Tokenizer {
  readonly name: string;
  readonly vocabSize: number;
  /** What rebuilds this tokenizer elsewhere (tabs, the export). */
  readonly spec: TokenizerSpec;
  encode(text: string): Int32Array;
  decode(ids: ArrayLike<number>): string;
}

export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}
