/**
 * Run with part of the model (SkipPipe, docs/skippipe.md#run-with-part-of-the-model): the
 * validation loss of an operator-chosen subset of stages (stage 0 and S-1 included, in order:
 * shared/schedule/skip-paths.ts evalOrder) next to the full model's, measured by the tabs on the
 * same weights. Holds the run at an iteration boundary (as the export does), measures, releases.
 * The full model's loss is null when a stage has no tab (a stage trained around, SkipPipe); the
 * subset needs only its own stages served.
 */
import { evalOrder, SkipRuleError } from '../../shared/schedule/skip-paths.js';
import type { PartialEvalResult } from '../../shared/protocol/operator.js';
import { HttpError } from './model-export.js';
import type { OperatorContext } from './operator-context.js';
import type { RunHold } from './run-hold.js';

/** `0,2,3` (a query parameter) as stage numbers; throws an HttpError 400 for anything else. */
export function parseStageList(text: string | null): number[] {
  if (text === null || !/^\d{1,5}(,\d{1,5}){0,255}$/.test(text.trim())) throw new HttpError(400, 'stages: a comma-separated list of stage numbers, e.g. stages=0,2,3');
  return text.trim().split(',').map(Number);
}

export class PartialEval {
  private running = false;

  constructor(private ctx: OperatorContext, private hold: RunHold) {}

  async evaluate(stages: readonly number[]): Promise<PartialEvalResult> {
    const { run, tabs, events } = this.ctx;
    let order: number[];
    try {
      order = evalOrder(stages, run.nStages);
    } catch (e) {
      if (e instanceof SkipRuleError) throw new HttpError(400, e.message);
      throw e;
    }
    if (run.evalBatches <= 0) throw new HttpError(409, 'the run validates on no batches (--eval-batches 0)');
    const missing = order.find((s) => tabs.stages.replicas(s).length === 0);
    if (missing !== undefined) throw new HttpError(409, `stage ${missing} has no volunteer right now; choose stages that are served`);
    if (this.running) throw new HttpError(409, 'a partial-model validation is already running');
    this.running = true;
    const release = this.hold.hold();
    try {
      const deadline = Date.now() + run.stepTimeoutMs;
      while (run.status().state === 'running') {
        if (Date.now() > deadline) throw new HttpError(503, 'the current iteration did not finish in time; try again');
        await new Promise((r) => setTimeout(r, 25));
      }
      const iteration = run.iteration();
      const loss = await run.validate(order);
      const served = Array.from({ length: run.nStages }, (_, s) => s).every((s) => tabs.stages.replicas(s).length > 0);
      const fullLoss = served ? await run.validate() : null;
      const ratio = fullLoss !== null ? Math.exp(loss - fullLoss) : null;
      events.add('run', `operator validated stages ${order.join(',')} at iteration ${iteration}: loss ${loss.toFixed(4)}${fullLoss !== null ? ` (full model ${fullLoss.toFixed(4)}, perplexity x${ratio!.toFixed(3)})` : ''}`, {
        operator: true,
        action: 'partial_eval',
        stages: order,
        loss,
        fullLoss,
        iteration,
      });
      return { stages: order, iteration, loss, fullLoss, perplexityRatio: ratio };
    } finally {
      this.running = false;
      release();
    }
  }
}
