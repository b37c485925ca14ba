import { inspect } from 'node:util';
import { ConsoleLogger, LogLevel } from '@nestjs/common';

/**
 * The CLI's Nest logger: compact `dr <level> [Context] message` lines, all on stderr (Nest's ConsoleLogger
 * writes warn/log to stdout), so command output on stdout stays clean for pipes. Stack traces only when
 * `showStacks` is set.
 */
export class CliLogger extends ConsoleLogger {
  constructor(
    logLevels: LogLevel[],
    private readonly showStacks: boolean,
  ) {
    super({ logLevels, prefix: 'dr' });
  }

  protected override printMessages(
    messages: unknown[],
    context = '',
    logLevel: LogLevel = 'log',
    _writeStreamType?: 'stdout' | 'stderr',
    errorStack?: unknown,
  ): void {
    // A boot failure is reported once, by the CLI itself (see reportError); Nest's copy would add a stack trace.
    if (context === 'ExceptionHandler' && !this.showStacks) return;
    const where = context ? ` [${context}]` : '';
    for (const message of messages) {
      const text =
        typeof message === 'string'
          ? message
          : message instanceof Error && !this.showStacks
            ? message.message
            : inspect(message, { depth: 3, breakLength: Infinity });
      process.stderr.write(`dr ${logLevel}${where} ${text}\n`);
    }
    if (this.showStacks && typeof errorStack === 'string') process.stderr.write(`${errorStack}\n`);
  }

  protected override printStackTrace(stack: string): void {
    if (this.showStacks) super.printStackTrace(stack);
  }
}

/** Nest log levels for the CLI: errors and warnings, plus everything up to `level` when it is `debug`/`verbose`. */
export function cliLogLevels(level: string): LogLevel[] {
  const all: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];
  const upTo = all.indexOf(level as LogLevel);
  return upTo >= all.indexOf('debug') ? all.slice(0, upTo + 1) : ['fatal', 'error', 'warn'];
}
