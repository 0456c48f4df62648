/**
 * A byte-level BPE trainer (Sennrich et al. 2016, as in GPT-2): start from the 256 bytes, and
 * repeatedly merge the most frequent adjacent pair of tokens inside pre-token chunks until the
 * vocabulary has `vocabSize` tokens. Deterministic: ties go to the pair with the smaller ids, and
 * nothing depends on hash order or the clock, so the same chunk counts give the same merges on
 * every machine.
 *
 * Why our own: the npm index holds BPE encoders (@huggingface/tokenizers, tiktoken ports, GPT-2
 * encoders) but no pure-JS *trainer*; Hugging Face's Rust trainer reaches Node only as per-platform
 * native bindings. The
 * result is written as a Hugging Face tokenizer.json (`bpeTokenizerJson`), which
 * @huggingface/tokenizers loads to encode and decode, in Node and in the browser alike.
 *
 * Incremental counting: pair counts are kept in a map and a max-heap with lazy invalidation, and
 * each merge only revisits the chunks that contain the merged pair.
 */
import { BYTE_TO_CHAR, preTokenize } from './byte-level.js';

export class BpeTrainError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BpeTrainError';
  }
}

/** Largest vocabulary the trainer makes (token ids must fit the 2^20 pair key). */
export const MAX_BPE_VOCAB = 1 << 20;

/** Pre-token chunk -> occurrences: what a corpus contributes to training. */
export class ChunkCounts {
  readonly counts = new Map<string, number>();
  /** UTF-16 code units seen (what a training cap counts). */
  chars = 0;

  add(text: string): void {
    for (const chunk of preTokenize(text)) this.counts.set(chunk, (this.counts.get(chunk) ?? 0) + 1);
    this.chars += text.length;
  }
}

export interface BpeModel {
  /** Token strings (GPT-2 byte stand-ins); ids 0..255 are the bytes themselves. */
  vocab: string[];
  /** Merge rules in rank order, as pairs of token strings. */
  merges: [string, string][];
}

const KEY = MAX_BPE_VOCAB;
const pairKey = (a: number, b: number) => a * KEY + b;

/** Max-heap of (count, key): larger count first, then smaller key. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];
  get size() {
    return this.counts.length;
  }
  private before(i: number, j: number) {
    return this.counts[i]! > this.counts[j]! || (this.counts[i] === this.counts[j] && this.keys[i]! < this.keys[j]!);
  }
  private swap(i: number, j: number) {
    [this.counts[i], this.counts[j]] = [this.counts[j]!, this.counts[i]!];
    [this.keys[i], this.keys[j]] = [this.keys[j]!, this.keys[i]!];
  }
  push(count: number, key: number) {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  pop(): { count: number; key: number } {
    const top = { count: this.counts[0]!, key: this.keys[0]! };
    const lastC = this.counts.pop()!;
    const lastK = this.keys.pop()!;
    if (this.counts.length > 0) {
      this.counts[0] = lastC;
      this.keys[0] = lastK;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.counts.length && this.before(l, m)) m = l;
        if (r < this.counts.length && this.before(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

/** Trains a byte-level BPE of (at most) `vocabSize` tokens on these chunk counts. */
export function trainBpe(chunks: ChunkCounts, vocabSize: number): BpeModel {
  if (!Number.isInteger(vocabSize) || vocabSize < 256 || vocabSize > MAX_BPE_VOCAB) {
    throw new BpeTrainError(`BPE vocabulary must be an integer in [256, ${MAX_BPE_VOCAB}], got ${vocabSize}`);
  }
  const vocab = BYTE_TO_CHAR.slice();
  const idOf = new Map<string, number>(vocab.map((s, i) => [s, i]));
  const merges: [string, string][] = [];
  const enc = new TextEncoder();
  // Chunks in a fixed order (sorted), so the result does not depend on the order text arrived in.
  const entries = [...chunks.counts.entries()].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  const words: number[][] = entries.map(([w]) => Array.from(enc.encode(w)));
  const freq = entries.map(([, c]) => c);
  const pairCount = new Map<number, number>();
  const where = new Map<number, number[]>();
  const addPairs = (w: number, sign: 1 | -1, touched: Set<number> | null) => {
    const s = words[w]!;
    for (let i = 0; i + 1 < s.length; i++) {
      const k = pairKey(s[i]!, s[i + 1]!);
      pairCount.set(k, (pairCount.get(k) ?? 0) + sign * freq[w]!);
      touched?.add(k);
      if (sign > 0) {
        const list = where.get(k);
        if (!list) where.set(k, [w]);
        else if (list[list.length - 1] !== w) list.push(w);
      }
    }
  };
  words.forEach((_, w) => addPairs(w, 1, null));
  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push(c, k);

  while (vocab.length < vocabSize && heap.size > 0) {
    const { count, key } = heap.pop();
    if (pairCount.get(key) !== count || count <= 0) continue; // stale entry
    const a = Math.floor(key / KEY);
    const b = key % KEY;
    const merged = vocab[a]! + vocab[b]!;
    let id = idOf.get(merged);
    if (id === undefined) {
      id = vocab.length;
      vocab.push(merged);
      idOf.set(merged, id);
    }
    merges.push([vocab[a]!, vocab[b]!]);
    const touched = new Set<number>();
    const list = where.get(key) ?? [];
    where.delete(key);
    let lastW = -1;
    for (const w of list) {
      if (w === lastW) continue;
      lastW = w;
      const s = words[w]!;
      let has = false;
      for (let i = 0; i + 1 < s.length; i++) if (s[i] === a && s[i + 1] === b) has = true;
      if (!has) continue;
      addPairs(w, -1, touched);
      const next: number[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          next.push(id);
          i++;
        } else next.push(s[i]!);
      }
      words[w] = next;
      addPairs(w, 1, touched);
    }
    for (const k of touched) {
      const c = pairCount.get(k)!;
      if (c <= 0) pairCount.delete(k);
      else heap.push(c, k);
    }
  }
  return { vocab, merges };
}

/** The model as a Hugging Face tokenizer.json object (byte-level BPE, GPT-2 style). */
export function bpeTokenizerJson(m: BpeModel): Record<string, unknown> {
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(m.vocab.map((s, i) => [s, i])),
      merges: m.merges,
    },
  };
}
