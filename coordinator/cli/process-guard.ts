/**
 * The process-level safety net: an error no handler caught is logged with its context and counted
 * (`swarm_process_errors_total{kind}`) instead of ending the process and with it the run, every
 * tab's work and the dashboard.
 *
 * - An unhandled promise rejection leaves no half-done synchronous state behind: logged, serving goes on.
 * - An uncaught exception from a connection a peer broke (EPIPE, ECONNRESET, a write after the
 *   stream ended, ...) concerns that connection only: logged, serving goes on.
 * - Any other uncaught exception is logged and serving goes on too, unless `maxPerMinute` of them
 *   arrive within a minute: then the process state is not trusted any more and it exits with
 *   status 70, so a supervisor restarts it and the run resumes from SQLite and the tabs.
 */
import type { Logger } from '../record/log.js';
import type { SwarmMetrics } from '../record/metrics.js';

const PEER_ERRORS = new Set(['EPIPE', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END', 'ERR_STREAM_PREMATURE_CLOSE']);

export interface ProcessGuardOptions {
  log: Logger;
  metrics?: Pick<SwarmMetrics, 'processErrors'>;
  /** Other uncaught exceptions per minute before the process gives up (default 5). */
  maxPerMinute?: number;
  exit?: (code: number) => void;
}

function describe(e: unknown): Record<string, unknown> {
  if (e instanceof Error) return { err: e.message, name: e.name, code: (e as NodeJS.ErrnoException).code, stack: e.stack?.split('\n').slice(0, 8).join('\n') };
  return { err: String(e).slice(0, 1024) };
}

export class ProcessGuard {
  private recent: number[] = [];
  private installed: (() => void) | null = null;

  constructor(private o: ProcessGuardOptions) {}

  onRejection(reason: unknown): void {
    this.o.metrics?.processErrors.inc({ kind: 'unhandled_rejection' });
    this.o.log.error(describe(reason), 'unhandled promise rejection (caught by the process guard; still serving)');
  }

  /** Returns whether the process keeps serving. */
  onException(err: unknown, origin = 'uncaughtException'): boolean {
    const code = (err as NodeJS.ErrnoException)?.code;
    if (code && PEER_ERRORS.has(code)) {
      this.o.metrics?.processErrors.inc({ kind: 'peer_error' });
      this.o.log.warn({ ...describe(err), origin }, 'uncaught error from a broken connection (still serving)');
      return true;
    }
    this.o.metrics?.processErrors.inc({ kind: 'uncaught_exception' });
    const now = Date.now();
    this.recent = this.recent.filter((t) => now - t < 60_000);
    this.recent.push(now);
    const max = this.o.maxPerMinute ?? 5;
    if (this.recent.length >= max) {
      this.o.log.fatal({ ...describe(err), origin, perMinute: this.recent.length }, `${this.recent.length} uncaught exceptions within a minute: exiting (status 70) so a supervisor restarts and the run resumes`);
      (this.o.exit ?? process.exit)(70);
      return false;
    }
    this.o.log.error({ ...describe(err), origin }, 'uncaught exception (caught by the process guard; still serving)');
    return true;
  }

  /** Registers the handlers on `process`; returns a function that removes them. */
  install(): () => void {
    if (this.installed) return this.installed;
    const rej = (r: unknown) => this.onRejection(r);
    const exc = (e: unknown, origin: string) => void this.onException(e, origin);
    process.on('unhandledRejection', rej);
    process.on('uncaughtException', exc);
    this.installed = () => {
      process.off('unhandledRejection', rej);
      process.off('uncaughtException', exc);
      this.installed = null;
    };
    return this.installed;
  }
}
