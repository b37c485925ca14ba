import { DrError } from '../errors/dr-error';
import { CliInterrupted } from './interrupt';

/** Exit codes of `dr`: 0 success, 1 job failed / verification failed / unexpected error, 2 rejected request. */
export const EXIT = { OK: 0, FAILED: 1, REJECTED: 2, INTERRUPTED: 130 } as const;

const HINTS: Partial<Record<DrError['code'], string>> = {
  TARGET_NOT_EMPTY: 'pass --overwrite to restore over the existing files',
  TARGET_EXISTS: 'pass --overwrite to restore into the existing database',
  TARGET_NOT_ALLOWED: 'restore targets must lie below one of DR_RESTORE_ROOTS',
};

interface CommanderLikeError {
  code: string;
  exitCode: number;
}

function isCommanderError(error: unknown): error is CommanderLikeError {
  const e = error as Partial<CommanderLikeError> | null;
  return typeof e?.code === 'string' && e.code.startsWith('commander.') && typeof e.exitCode === 'number';
}

/**
 * Prints `error` to stderr, without a stack trace unless `verbose`, and returns the exit code:
 * DrError → 2 (message, then each `field: message`), commander usage errors → their own code (commander has
 * already printed them), interruption → 130, anything else → 1.
 */
export function reportError(error: unknown, verbose = false): number {
  if (isCommanderError(error)) return error.exitCode;
  if (error instanceof CliInterrupted) {
    process.stderr.write(`${error.message}\n`);
    return EXIT.INTERRUPTED;
  }
  if (error instanceof DrError) {
    const lines = [`error [${error.code}]: ${error.message}`];
    for (const d of error.details) lines.push(`  ${d.field}: ${d.message}`);
    const hint = HINTS[error.code];
    if (hint) lines.push(`hint: ${hint}`);
    process.stderr.write(`${lines.join('\n')}\n`);
    return EXIT.REJECTED;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`error: ${message}\n`);
  if (verbose && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  return EXIT.FAILED;
}

/** Sets the process exit code, never lowering a failure already recorded. */
export function setExitCode(code: number): void {
  if (code !== 0 && (process.exitCode === undefined || process.exitCode === 0)) process.exitCode = code;
}
