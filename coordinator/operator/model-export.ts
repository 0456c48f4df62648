/**
 * The trained model as one safetensors file. Holds the run at an iteration boundary, fetches every
 * stage's weights from its tab (checked against the stage's specs), optionally lets the swarm
 * measure the validation loss of exactly these weights, then releases the run.
 */
import { stageParamSpecs } from '../../shared/model/params.js';
import { validateWeights, type NamedWeights } from '../../shared/model/stage.js';
import { decodeWeights } from '../../shared/protocol/index.js';
import { AskError, ASK_TIMEOUT_MS } from '../tabs/ask-stage.js';
import { assembleModelFile } from './model-file.js';
import type { OperatorContext } from './operator-context.js';
import type { RunHold } from './run-hold.js';
import { partialModelConfig, partialModelWeights } from './partial-model-file.js';
import { evalOrder, SkipRuleError } from '../../shared/schedule/skip-paths.js';

export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export interface ExportedModel {
  bytes: Uint8Array;
  filename: string;
  iteration: number;
  /** Validation loss the swarm measured on exactly these weights (null if not measured). */
  valLoss: number | null;
}

export class ModelExport {
  private running = false;

  constructor(private ctx: OperatorContext, private hold: RunHold, private changed: () => void) {}

  get exporting(): boolean {
    return this.running;
  }

  /**
   * `stages`: export only this subset (stage 0 and S-1 included) as a model of its own
   * (partial-model-file.ts); its validation is the partial one along the subset.
   */
  async export(opts: { validate?: boolean; stages?: readonly number[] } = {}): Promise<ExportedModel> {
    if (this.running) throw new HttpError(409, 'an export is already running');
    const { run, tabs, events, log } = this.ctx;
    let order: number[] | null = null;
    if (opts.stages) {
      try {
        order = evalOrder(opts.stages, run.nStages);
      } catch (e) {
        if (e instanceof SkipRuleError) throw new HttpError(400, e.message);
        throw e;
      }
    }
    const wanted = order ?? Array.from({ length: run.nStages }, (_, s) => s);
    this.running = true;
    const release = this.hold.hold();
    this.changed();
    try {
      const deadline = Date.now() + run.stepTimeoutMs + ASK_TIMEOUT_MS.weights;
      while (run.status().state === 'running') {
        if (Date.now() > deadline) throw new HttpError(503, 'the current iteration did not finish in time; try again');
        await new Promise((r) => setTimeout(r, 25));
      }
      const config = run.config;
      const owners = Array.from({ length: run.nStages }, (_, s) => (wanted.includes(s) ? tabs.stages.owner(s) : undefined));
      const missing = wanted.find((s) => !owners[s]);
      if (missing !== undefined) throw new HttpError(409, `stage ${missing} has no volunteer right now (waiting or being rebuilt); export when every stage is served`);
      const weights = new Map<number, NamedWeights>();
      for (const s of wanted) {
        const v = owners[s];
        let r: Uint8Array;
        try {
          r = await tabs.pullWeights(v!, ASK_TIMEOUT_MS.weights);
        } catch (e) {
          const timedOut = e instanceof AskError && (e.failure === 'timeout' || e.failure === 'disconnected');
          throw new HttpError(timedOut ? 503 : 502, `stage ${s} (${v!.id}) did not send its weights: ${(e as Error).message}`);
        }
        let w: NamedWeights;
        try {
          w = decodeWeights(r);
          validateWeights(stageParamSpecs(config, s), w);
        } catch (e) {
          throw new HttpError(502, `stage ${s} (${v!.id}) sent bad weights: ${(e as Error).message}`);
        }
        weights.set(s, w);
      }
      const iteration = run.iteration();
      let valLoss: number | null = null;
      if (opts.validate && run.evalBatches > 0) {
        try {
          const v = await (order ? run.validate(order) : run.validate());
          // Only if nothing changed hands meanwhile (a replaced stage holds other weights).
          if (wanted.every((s) => tabs.stages.owner(s) === owners[s]) && run.iteration() === iteration) valLoss = v;
        } catch (e) {
          log.warn({ err: (e as Error).message }, 'validation for the export failed');
        }
      }
      const fileConfig = order ? partialModelConfig(config, order) : config;
      const bytes = assembleModelFile(fileConfig, order ? partialModelWeights(order, weights) : wanted.map((s) => weights.get(s)!), {
        ...(order ? { stages: order.join(','), source_model_config: JSON.stringify(config) } : {}),
        run_id: run.runId(),
        iteration: String(iteration),
        settings: JSON.stringify(run.settings),
        created: new Date().toISOString(),
        ...(valLoss !== null ? { val_loss: String(valLoss), val_batches: String(run.evalBatches), val_batch_size: String(run.settings.batch) } : {}),
      }, run.tokenizer);
      const filename = `swarm-${run.runId()}-it${iteration}${order ? `-stages${order.join('_')}` : ''}.safetensors`;
      events.add('run', `operator exported the ${order ? `partial model (stages ${order.join(',')})` : 'model'} at iteration ${iteration} (${(bytes.byteLength / 1024).toFixed(1)} KiB${valLoss !== null ? `, validation loss ${valLoss.toFixed(4)}` : ''})`, {
        operator: true,
        action: 'export',
        iteration,
        bytes: bytes.byteLength,
        valLoss,
        ...(order ? { stages: order } : {}),
      });
      return { bytes, filename, iteration, valLoss };
    } finally {
      this.running = false;
      release();
      this.changed();
    }
  }
}
