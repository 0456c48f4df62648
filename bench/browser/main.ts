/**
 * Page of the Chromium compute benchmark (bench/compute-browser.ts): starts the measuring Web
 * Worker with the options in the query string and exposes its messages to Playwright as
 * `window.computeBench`.
 */
import type { BenchToPage } from './worker';

interface BenchState {
  log: string[];
  results: Extract<BenchToPage, { type: 'result' }>[];
  skipped: { backend: string; reason: string }[];
  done: boolean;
  error: string | null;
}

const state: BenchState = { log: [], results: [], skipped: [], done: false, error: null };
(window as unknown as { computeBench: BenchState }).computeBench = state;
const pre = document.getElementById('log')!;

const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
worker.onmessage = (ev: MessageEvent<BenchToPage>) => {
  const m = ev.data;
  if (m.type === 'log') {
    state.log.push(m.line);
    pre.textContent += `\n${m.line}`;
  } else if (m.type === 'result') state.results.push(m);
  else if (m.type === 'skipped') state.skipped.push(m);
  else if (m.type === 'done') state.done = true;
  else state.error = m.message;
};
worker.onerror = (e) => {
  state.error = e.message || 'worker error';
};
worker.postMessage(JSON.parse(new URLSearchParams(location.search).get('options') ?? '{}'));
