/**
 * Text sampling from the model the swarm is training, with no separate copy of it: for each new
 * byte the coordinator sends the context (the last seqLen tokens) through the stages' tabs on the
 * plain path (`infer` events, one hop per stage) and picks the next byte from the head's logits
 * for the last position: greedy at temperature 0, otherwise softmax(logits / temperature) drawn
 * with a seeded generator. Callers encode the prompt and decode the tokens with the run's tokenizer.
 *
 * Sampling interleaves with training (tabs answer `infer` outside their task queue), so while the
 * run is training, consecutive stages may be one optimizer step apart; pause the run for a sample
 * from one exact iteration.
 */
import { forwardPath, hopsFromBlockOrder } from '../../shared/schedule/paths.js';
import { decodeTensorFrame, encodeTensorFrame } from '../../shared/protocol/index.js';
import { mulberry32 } from '../../shared/model/rng.js';
import type { ResolvedConfig } from '../../shared/model/config.js';
import type { StageTable } from '../placement/stage-table.js';
import { askStage, AskError, bytesReply } from '../tabs/ask-stage.js';

export const INFER_TIMEOUT_MS = 30_000;

/** Index of the next token: argmax at temperature 0, else a draw from softmax(logits / t). */
export function pickToken(logits: Float32Array, temperature: number, rand: () => number): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  if (!(temperature > 0)) return best;
  const max = logits[best]!;
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    p[i] = Math.exp((logits[i]! - max) / temperature);
    sum += p[i]!;
  }
  let r = rand() * sum;
  for (let i = 0; i < p.length; i++) {
    r -= p[i]!;
    if (r < 0) return i;
  }
  return best;
}

export interface GenerateOptions {
  length: number;
  temperature: number;
  seed: number;
  seqLen: number;
  /** Stops early when true (e.g. coordinator closing). */
  cancelled?: () => boolean;
}

/** Autoregressive generation with any "context -> last-position logits" function. */
export async function generate(
  logitsOf: (context: Int32Array) => Promise<Float32Array>,
  prompt: Int32Array,
  opts: GenerateOptions,
): Promise<number[]> {
  // An empty prompt starts from a newline (the corpus is line-broken text).
  const tokens = prompt.length > 0 ? Array.from(prompt) : [10];
  const rand = mulberry32(opts.seed);
  const out: number[] = [];
  for (let i = 0; i < opts.length; i++) {
    if (opts.cancelled?.()) throw new Error('sampling cancelled');
    const context = Int32Array.from(tokens.slice(-opts.seqLen));
    const next = pickToken(await logitsOf(context), opts.temperature, rand);
    tokens.push(next);
    out.push(next);
  }
  return out;
}

/**
 * The context padded on the right to a power of two (8 .. seqLen) and the position whose logits
 * predict the next token. Causal attention keeps the padding out of every earlier position, and a
 * tab then needs position tables for only a few lengths.
 */
export function padContext(context: Int32Array, seqLen: number): { tokens: Int32Array; position: number } {
  if (context.length === 0 || context.length > seqLen) throw new RangeError(`context of ${context.length} tokens (1..${seqLen})`);
  let T = 8;
  while (T < context.length) T *= 2;
  T = Math.min(T, seqLen);
  const tokens = new Int32Array(T);
  tokens.set(context);
  return { tokens, position: context.length - 1 };
}

export class SamplingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SamplingError';
  }
}

/**
 * Next-token logits for `context`, computed by the tabs: one `infer` hop per stage on the plain
 * path (context padded by padContext), or along `order` (a partial model's block order, SkipPipe:
 * skip-paths.ts evalOrder); each reply is checked (dtype, shape, finite values) before it travels on.
 */
export async function swarmLogits(stages: Pick<StageTable, 'owner'>, config: ResolvedConfig, nStages: number, context: Int32Array, order?: readonly number[]): Promise<Float32Array> {
  const { tokens, position } = padContext(context, config.seqLen);
  const T = tokens.length;
  const maxBytes = 64 + T * Math.max(config.dModel, config.vocabSize) * 4 + 64;
  let frame = encodeTensorFrame({ kind: 'tokens', iteration: 0, microbatch: 0, hop: 0, fromStage: -1, toStage: 0, dtype: 'int32', shape: [1, T] }, tokens);
  const path = order ? hopsFromBlockOrder(order, nStages) : forwardPath(0, nStages, false);
  for (const [i, hop] of path.entries()) {
    const owner = stages.owner(hop.stage);
    if (!owner) throw new SamplingError(`stage ${hop.stage} has no volunteer right now; sample again when the swarm is complete`);
    let reply: Uint8Array;
    try {
      reply = await askStage(owner, 'infer', [{ stage: hop.stage, segment: hop.segment, ...(hop.segment.head ? { position } : {}) }, frame], bytesReply, INFER_TIMEOUT_MS);
    } catch (e) {
      if (e instanceof AskError && e.failure === 'timeout') throw new SamplingError(`stage ${hop.stage} (${owner.id}) did not answer within ${INFER_TIMEOUT_MS / 1000} s`);
      throw new SamplingError(`stage ${hop.stage} (${owner.id}) could not run the forward pass: ${(e as Error).message}`);
    }
    const last = i === path.length - 1;
    const expected = last ? [1, config.vocabSize] : [1, T, config.dModel];
    let decoded;
    try {
      decoded = decodeTensorFrame(reply, { maxBytes });
    } catch (e) {
      throw new SamplingError(`stage ${hop.stage} (${owner.id}) sent a bad frame: ${(e as Error).message}`);
    }
    if (decoded.header.dtype !== 'float32' || decoded.header.shape.join(',') !== expected.join(',')) {
      throw new SamplingError(`stage ${hop.stage} (${owner.id}) sent ${decoded.header.dtype} [${decoded.header.shape}], expected float32 [${expected}]`);
    }
    if (last) return decoded.data as Float32Array;
    frame = reply;
  }
  throw new SamplingError('empty pipeline path');
}

