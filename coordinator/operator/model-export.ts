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

  async export(opts: { validate?: boolean } = {}): Promise<ExportedModel> {
    if (this.running) throw new HttpError(409, 'an export is already running');
    const { run, tabs, events, log } = this.ctx;
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
      const owners = Array.from({ length: run.nStages }, (_, s) => tabs.stages.owner(s));
      const missing = owners.findIndex((v) => !v);
      if (missing >= 0) throw new HttpError(409, `stage ${missing} has no volunteer right now (waiting or being rebuilt); export when every stage is served`);
      const weights: NamedWeights[] = [];
      for (const [s, v] of owners.entries()) {
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
        weights.push(w);
      }
      const iteration = run.iteration();
      let valLoss: number | null = null;
      if (opts.validate && run.evalBatches > 0) {
        try {
          const v = await run.validate();
          // Only if nothing changed hands meanwhile (a replaced stage holds other weights).
          if (owners.every((o, s) => tabs.stages.owner(s) === o) && run.iteration() === iteration) valLoss = v;
        } catch (e) {
          log.warn({ err: (e as Error).message }, 'validation for the export failed');
        }
      }
      const bytes = assembleModelFile(config, weights, {
        run_id: run.runId(),
        iteration: String(iteration),
        settings: JSON.stringify(run.settings),
        created: new Date().toISOString(),
        ...(valLoss !== null ? { val_loss: String(valLoss), val_batches: String(run.evalBatches), val_batch_size: String(run.settings.batch) } : {}),
      }, run.tokenizer);
      const filename = `swarm-${run.runId()}-it${iteration}.safetensors`;
      events.add('run', `operator exported the model at iteration ${iteration} (${(bytes.byteLength / 1024).toFixed(1)} KiB${valLoss !== null ? `, validation loss ${valLoss.toFixed(4)}` : ''})`, {
        operator: true,
        action: 'export',
        iteration,
        bytes: bytes.byteLength,
        valLoss,
      });
      return { bytes, filename, iteration, valLoss };
    } finally {
      this.running = false;
      release();
      this.changed();
    }
  }
}
