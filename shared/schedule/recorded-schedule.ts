/**
 * A recorded skip schedule: the block order every microbatch of every iteration followed, in the
 * form the swarm records and the local trainer replays (`npm run train:local -- --schedule-file f`),
 * so that a swarm with skips can be checked against the reference exactly as full paths are.
 *
 *   { "version": 1, "nStages": 8, "microbatches": 4, "skipRatio": 0.33, "swap": false,
 *     "iterations": [ { "vacant": [], "paths": [[0,2,3,5,7], [0,1,4,6,7], ...] }, ... ] }
 *
 * `vacant` lists the intermediate stages no tab served in that iteration (their paths skip them).
 * A file comes from outside: parseRecordedSchedule checks its shape (zod) and then every path
 * against the rules of its iteration (skip-paths.ts checkPath with skipRules(nStages, skipRatio,
 * vacant)); the per-stage bounds are not re-checked (they depend on the run's mustVisit history).
 */
import { z } from 'zod';
import { checkPath, skipRules, SkipRuleError } from './skip-paths.js';

export const MAX_RECORDED_STAGES = 256;
export const MAX_RECORDED_MICROBATCHES = 4096;

const stageIndex = z.number().int().min(0).max(MAX_RECORDED_STAGES - 1);
const schema = z
  .object({
    version: z.literal(1),
    nStages: z.number().int().min(1).max(MAX_RECORDED_STAGES),
    microbatches: z.number().int().min(1).max(MAX_RECORDED_MICROBATCHES),
    skipRatio: z.number().min(0).lt(1),
    swap: z.boolean(),
    iterations: z.array(
      z
        .object({
          vacant: z.array(stageIndex).max(MAX_RECORDED_STAGES),
          paths: z.array(z.array(stageIndex).min(1).max(MAX_RECORDED_STAGES)).min(1).max(MAX_RECORDED_MICROBATCHES),
        })
        .strict(),
    ),
  })
  .strict();

export type RecordedSchedule = z.infer<typeof schema>;

export class ScheduleFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScheduleFileError';
  }
}

/** A recorded schedule from untrusted JSON (text or parsed), checked; throws a ScheduleFileError naming what is wrong. */
export function parseRecordedSchedule(input: string | unknown): RecordedSchedule {
  let raw: unknown = input;
  if (typeof input === 'string') {
    try {
      raw = JSON.parse(input);
    } catch (e) {
      throw new ScheduleFileError(`schedule file is not JSON: ${(e as Error).message}`);
    }
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ScheduleFileError(`schedule file: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const s = parsed.data;
  s.iterations.forEach((it, i) => {
    if (it.paths.length !== s.microbatches) throw new ScheduleFileError(`schedule file: iteration ${i} has ${it.paths.length} paths, not one per microbatch (${s.microbatches})`);
    let rules;
    try {
      rules = skipRules({ nStages: s.nStages, skipRatio: s.skipRatio, vacant: it.vacant });
    } catch (e) {
      if (e instanceof SkipRuleError) throw new ScheduleFileError(`schedule file: iteration ${i}: ${e.message}`);
      throw e;
    }
    it.paths.forEach((p, mb) => {
      const v = checkPath(p, rules);
      if (v) throw new ScheduleFileError(`schedule file: iteration ${i}, microbatch ${mb}: ${v.rule}: ${v.message}`);
    });
  });
  return s;
}
