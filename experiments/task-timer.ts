/**
 * Measures every task of an in-process iteration: wraps a Stage's forward, backward and
 * clipAndStep (on the instance, so the pipeline code runs unchanged) and files each call's
 * duration under its microbatch and hop, read from the stash key (trainer/pipeline.ts:
 * `${mb}:${hopIndex}`). On the wasm and cpu backends tfjs runs kernels synchronously, so a call's
 * duration is its compute.
 */
import type { Stage } from '../shared/model/stage.js';
import { forwardPath } from '../shared/schedule/paths.js';
import type { IterationTiming } from './timeline.js';

export class TaskTimer {
  private current: IterationTiming | null = null;
  /** Stages whose methods report to this timer. */
  private wrapped = new WeakSet<Stage>();

  /** Wraps stages not wrapped yet (recovery puts new Stage objects in the array). */
  attach(stages: Stage[]): void {
    for (const stage of stages) {
      if (this.wrapped.has(stage)) continue;
      this.wrapped.add(stage);
      const forward = stage.forward.bind(stage);
      const backward = stage.backward.bind(stage);
      const clipAndStep = stage.clipAndStep.bind(stage);
      stage.forward = (key, input, seg, targets) => {
        const t0 = performance.now();
        const out = forward(key, input, seg, targets);
        this.record('F', key, performance.now() - t0);
        return out;
      };
      stage.backward = (key, dy) => {
        const t0 = performance.now();
        const out = backward(key, dy);
        this.record('B', key, performance.now() - t0);
        return out;
      };
      stage.clipAndStep = () => {
        const t0 = performance.now();
        const out = clipAndStep();
        if (this.current) this.current.step[stage.index]! += (performance.now() - t0) / 1000;
        return out;
      };
    }
  }

  /** Starts timing an iteration of `microbatches` microbatches. */
  begin(nStages: number, microbatches: number, swap: boolean): void {
    const grid = () => Array.from({ length: microbatches }, (_, mb) => new Array<number>(forwardPath(mb, nStages, swap).length).fill(0));
    this.current = { swap, tasks: { forward: grid(), backward: grid() }, step: new Array<number>(nStages).fill(0) };
  }

  /** Ends the iteration and returns its timing. */
  end(): IterationTiming {
    if (!this.current) throw new Error('TaskTimer.end without begin');
    const t = this.current;
    this.current = null;
    return t;
  }

  private record(dir: 'F' | 'B', key: string, ms: number): void {
    if (!this.current) return;
    const [mb, hop] = key.split(':').map(Number) as [number, number];
    const row = (dir === 'F' ? this.current.tasks.forward : this.current.tasks.backward)[mb];
    if (!row || !(hop < row.length)) throw new Error(`task ${dir} ${key} is outside the timed iteration`);
    row[hop]! += ms / 1000;
  }
}
