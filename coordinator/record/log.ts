/** Structured logging (pino): JSON lines on stdout, level from LOG_LEVEL (default info). */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(opts: { level?: string; silent?: boolean } = {}): Logger {
  return pino({ level: opts.silent ? 'silent' : (opts.level ?? process.env.LOG_LEVEL ?? 'info'), base: undefined });
}
