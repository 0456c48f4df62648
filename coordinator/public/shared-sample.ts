/**
 * The volunteer page's "the model now writes…": one sample of the swarm's model, made by the
 * coordinator every few minutes through the tabs (sampling.ts) and served to every page alike,
 * so no visitor can make the swarm generate text. A tick is skipped until the first step, while a
 * stage has no tab (waiting, recovering), and while the previous sample is still being made.
 */
import { generate, swarmLogits } from '../operator/sampling.js';
import type { Tokenizer } from '../../shared/data/tokenizer.js';
import type { StageTable } from '../placement/stage-table.js';
import type { Scheduler } from '../training/scheduler.js';
import type { Logger } from '../record/log.js';

export interface SharedSampleText {
  /** The prompt the continuation follows. */
  prompt: string;
  text: string;
  /** Iteration the swarm was at when sampling began. */
  iteration: number;
  /** Date.now() when it was made. */
  at: number;
}

export const SHARED_SAMPLE = { prompt: 'The whale', length: 64, temperature: 0.8 } as const;

export class SharedSample {
  latest: SharedSampleText | null = null;
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private closed = false;

  constructor(
    private scheduler: Scheduler,
    private stages: StageTable,
    private log: Logger,
    private everyMs: number,
    private tokenizer: Tokenizer,
  ) {}

  /** Starts the job (no-op when everyMs is 0). */
  start(): void {
    if (this.everyMs <= 0 || this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.everyMs);
    this.timer.unref();
  }

  stop(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Makes a sample now if the swarm can; resolves with it (or null when skipped or failed). */
  async tick(): Promise<SharedSampleText | null> {
    const status = this.scheduler.status();
    if (this.busy || this.closed || (status.state !== 'running' && status.state !== 'paused') || this.scheduler.iteration === 0) return null;
    for (let s = 0; s < this.scheduler.nStages; s++) if (!this.stages.owner(s)) return null;
    this.busy = true;
    const config = this.scheduler.opts.config;
    const iteration = this.scheduler.iteration;
    try {
      const tokens = await generate((ctx) => swarmLogits(this.stages, config, this.scheduler.nStages, ctx), this.tokenizer.encode(SHARED_SAMPLE.prompt), {
        length: SHARED_SAMPLE.length,
        temperature: SHARED_SAMPLE.temperature,
        seed: iteration + 1,
        seqLen: config.seqLen,
        cancelled: () => this.closed,
      });
      this.latest = { prompt: SHARED_SAMPLE.prompt, text: this.tokenizer.decode(tokens), iteration, at: Date.now() };
      return this.latest;
    } catch (e) {
      if (!this.closed) this.log.info({ err: (e as Error).message }, 'shared sample skipped');
      return null;
    } finally {
      this.busy = false;
    }
  }
}
