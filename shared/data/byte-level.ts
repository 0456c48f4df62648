/**
 * GPT-2's byte-level conventions, shared by the BPE trainer and the tokenizer.json it writes:
 * every byte has a printable Unicode stand-in (so a token is a plain string in tokenizer.json),
 * and text is split into chunks (words with their leading space, numbers, punctuation runs,
 * whitespace) that merges never cross. Hugging Face's `ByteLevel` pre-tokenizer with
 * `use_regex: true` splits with the same pattern, so a tokenizer trained here encodes the same way
 * when loaded by @huggingface/tokenizers (or Python's `tokenizers`).
 */

/** The GPT-2 pre-tokenizer pattern (JavaScript `u` mode). */
export const PRE_TOKEN_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** byte -> its stand-in character (GPT-2's bytes_to_unicode). */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = printable.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + extra++);
  }
  return table;
})();

/** Splits text into pre-token chunks (concatenated, they are the text again). */
export function preTokenize(text: string): string[] {
  return text.match(PRE_TOKEN_PATTERN) ?? [];
}
