import { describe, it, expect } from 'vitest';
import { pino } from 'pino';
import { ProcessGuard } from './process-guard.js';
import { SwarmMetrics } from '../record/metrics.js';

function guard(maxPerMinute = 3) {
  const lines: { level: number; msg: string; err?: string }[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const metrics = new SwarmMetrics();
  const exits: number[] = [];
  return { g: new ProcessGuard({ log, metrics, maxPerMinute, exit: (c) => void exits.push(c) }), lines, metrics, exits };
}

describe('ProcessGuard', () => {
  it('an unhandled rejection is logged with its context and counted; serving goes on', async () => {
    const { g, lines, metrics, exits } = guard();
    g.onRejection(new TypeError('Invalid URL: //'));
    g.onRejection('a plain string');
    expect(lines.map((l) => l.err)).toEqual(['Invalid URL: //', 'a plain string']);
    expect(await metrics.text()).toMatch(/swarm_process_errors_total\{kind="unhandled_rejection"\} 2/);
    expect(exits).toEqual([]);
  });

  it('errors of broken connections never stop the process; a storm of other exceptions does (status 70)', async () => {
    const { g, metrics, exits } = guard(3);
    const peer = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
    for (let i = 0; i < 20; i++) expect(g.onException(peer)).toBe(true);
    expect(g.onException(new Error('bug 1'))).toBe(true);
    expect(g.onException(new Error('bug 2'))).toBe(true);
    expect(exits).toEqual([]);
    expect(g.onException(new Error('bug 3'))).toBe(false);
    expect(exits).toEqual([70]);
    const m = await metrics.text();
    expect(m).toMatch(/kind="peer_error"\} 20/);
    expect(m).toMatch(/kind="uncaught_exception"\} 3/);
  });

  it('install registers both handlers on process and removes them again', () => {
    const { g } = guard();
    const before = [process.listenerCount('unhandledRejection'), process.listenerCount('uncaughtException')];
    const off = g.install();
    expect([process.listenerCount('unhandledRejection'), process.listenerCount('uncaughtException')]).toEqual([before[0]! + 1, before[1]! + 1]);
    off();
    expect([process.listenerCount('unhandledRejection'), process.listenerCount('uncaughtException')]).toEqual(before);
  });
});
