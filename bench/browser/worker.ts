/**
 * The Chromium compute benchmark's Web Worker: for each backend asked for, selects it the way the
 * volunteer worker does (client/src/backend.ts) and runs the same measurements as the Node
 * benchmark (bench/compute-run.ts).
 */
import { selectBackend } from '../../client/src/backend';
import type { BackendName } from '../../client/src/messages';
import { runBackend, type BackendResult, type RunOptions } from '../compute-run';

export type BenchToPage =
  | { type: 'log'; line: string }
  | { type: 'result'; backend: BackendName; adapter: string | null; result: BackendResult }
  | { type: 'skipped'; backend: string; reason: string }
  | { type: 'done' }
  | { type: 'error'; message: string };

export interface BenchOptions extends RunOptions {
  backends: BackendName[];
}

const scope = self as unknown as { postMessage(m: BenchToPage): void; onmessage: ((ev: MessageEvent<BenchOptions>) => void) | null };

scope.onmessage = async (ev) => {
  const o = ev.data;
  try {
    for (const backend of o.backends) {
      let adapter: string | null = null;
      try {
        const sel = await selectBackend([backend], { log: (line) => scope.postMessage({ type: 'log', line }) });
        adapter = sel.adapterInfo?.label ?? null;
      } catch (e) {
        scope.postMessage({ type: 'skipped', backend, reason: (e as Error).message });
        continue;
      }
      const result = await runBackend(o, (line) => scope.postMessage({ type: 'log', line: `${backend}: ${line}` }));
      scope.postMessage({ type: 'result', backend, adapter, result });
    }
    scope.postMessage({ type: 'done' });
  } catch (e) {
    scope.postMessage({ type: 'error', message: (e as Error).stack ?? String(e) });
  }
};
